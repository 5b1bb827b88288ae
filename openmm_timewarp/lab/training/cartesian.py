"""The ``cartesian`` family: the paper's transferable kernel-attention flow over Cartesian displacements."""

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch import nn

from ..datasets.pairs import collate_pairs, pair_datasets
from ...flow.cartesian.export import export_flow
from ...flow.cartesian.model import FlowConfig, TimewarpFlow
from .families import FlowFamily, TrainingData, register_family
from .trainer import pair_loss


class CartesianFamily(FlowFamily):
    """q(x(t + tau), v | x(t)) for any peptide of the known elements, trained on pairs of MD frames."""

    name = "cartesian"
    description = "transferable kernel-attention flow over Cartesian displacements (x(t + tau) given x(t))"
    config_type = FlowConfig

    def training_data(self, data: Sequence[str], lag_ps: Optional[float], splits: Optional[str] = None) -> TrainingData:
        if lag_ps is None:
            raise ValueError("the cartesian family models x(t + tau) given x(t): give a lag (--lag PS).")
        datasets = pair_datasets(data, lag_ps, splits=splits)
        train, validation = datasets["train"], datasets.get("validation", [])
        if len(train) == 0:
            raise ValueError(f"no training pairs at lag {lag_ps} ps under {', '.join(data)}")
        first = train.segments[0][0]
        summary = {
            "data": [os.path.abspath(d) for d in data],
            "lag_ps": lag_ps,
            "split": "by peptide: " + splits if splits else "by time within each run (0.8/0.1/0.1)",
            "splits": os.path.abspath(splits) if splits else None,
            "peptides": train.peptides(),
            "train_pairs": len(train),
            "validation_pairs": len(validation),
            "preset": first.metadata.get("preset", {}).get("name"),
            "temperature_K": first.metadata.get("temperature_K"),
            "num_atoms": int(len(first.atomic_numbers)) if len(train.peptides()) == 1 else 0,
            "topology": first.topology_path(),
        }
        return TrainingData(train, validation, collate_pairs, pair_loss, summary)

    def build(self, config: FlowConfig, data: TrainingData) -> nn.Module:
        return TimewarpFlow(config)

    def restore(self, run_info: Dict[str, Any]) -> nn.Module:
        return TimewarpFlow(FlowConfig(**(run_info.get("family_config") or run_info["flow_config"])))

    def export(self, runs: List[Tuple[nn.Module, Dict[str, Any]]], path: str, *, weights: Sequence[float],
               metadata: Dict[str, Any], transferable: bool = False) -> nn.Module:
        if len(runs) != 1:
            raise ValueError("the cartesian family exports one flow; mixtures are an internal-family feature.")
        flow, run_info = runs[0]
        summary = run_info["data_summary"]
        return export_flow(flow, path, temperature=float(summary["temperature_K"]), tau_ps=float(summary["lag_ps"]),
                           force_field=str(summary["preset"]),
                           num_atoms=0 if transferable else int(summary["num_atoms"]), metadata=metadata)


register_family(CartesianFamily())
