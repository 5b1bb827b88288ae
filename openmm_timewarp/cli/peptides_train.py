"""``openmm-timewarp peptides-train``: the transferable peptides model, from packed peptide data.

Examples::

    # one process
    openmm-timewarp peptides-train data/peptides -o runs/peptides-train --minutes 240 --export peptides.pt
    # data-parallel: two processes on one machine (gloo on CPU, NCCL on GPUs), or many on a cluster
    torchrun --nproc_per_node 2 -m openmm_timewarp.cli peptides-train data/peptides -o runs/peptides-train

Rerunning a command continues from ``OUTPUT/checkpoint.pt``; see
:mod:`openmm_timewarp.lab.training.peptides`.
"""


def add_arguments(parser):
    parser.add_argument("data", help="folder of packed peptides (<name>.npz, from `openmm-timewarp peptide-data`)")
    parser.add_argument("-o", "--output", required=True, help="training folder (checkpoint.pt, log.json)")
    parser.add_argument("--minutes", type=float, help="stop after this much training time (all runs together)")
    parser.add_argument("--steps", type=int, default=20000, help="optimizer steps (default %(default)s)")
    parser.add_argument("--peptides-per-step", type=int, default=8, help="peptides per step and process")
    parser.add_argument("--frames-per-peptide", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=96, help="width of the conditioners")
    parser.add_argument("--torsion-layers", type=int, default=6)
    parser.add_argument("--geometry-layers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("--export", help="write the trained model here (TorchScript, flow contract 1)")
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    import os

    import torch

    from ..flow.peptides.network import PeptideFlowConfig
    from ..lab.training.peptides import PeptideTrainConfig, export_peptides, train_peptides

    torch.set_num_threads(max(1, args.threads))
    flow_config = PeptideFlowConfig(hidden=args.hidden, torsion_layers=args.torsion_layers,
                                    geometry_layers=args.geometry_layers)
    config = PeptideTrainConfig(steps=args.steps, peptides_per_step=args.peptides_per_step,
                                frames_per_peptide=args.frames_per_peptide, learning_rate=args.learning_rate,
                                seed=args.seed, minutes=args.minutes)
    result = train_peptides(args.data, args.output, flow_config, config, progress=not args.no_progress)
    last = result.history[-1] if result.history else {}
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only the first process reports and exports
        print(f"trained {result.steps} steps on {len(result.data.train)} peptides; validation NLL per atom "
              f"{last.get('validation_nll', float('nan')):.3f}")
        if args.export:
            export_peptides(result, args.export)
            print(f"exported {args.export}")
    return 0
