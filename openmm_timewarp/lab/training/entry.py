"""One entry for likelihood training of any family, shared by ``openmm-timewarp train`` and ``fit``."""

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Union

from .families import TrainingData


class TrainingDataError(ValueError):
    """The training data could not be read (bad folders, lag or splits); the message says why."""


@dataclass
class FamilyTrainResult:
    """What :func:`train_family` did.

    Attributes
    ----------
    flow : torch.nn.Module
        The trained flow (best validation EMA weights).
    history : list of dict
        One row per epoch (``train_flow``'s history, earlier runs of the folder included).
    checkpoint, log : str
        ``checkpoint.pt`` and ``log.csv`` in the output folder.
    data : TrainingData
        The training data (its ``summary`` has the frame count).
    config : TrainConfig
        The training config used.
    """

    flow: Any
    history: list
    checkpoint: Optional[str]
    log: Optional[str]
    data: TrainingData
    config: Any


def train_family(family_name: str, data_paths: Sequence[str], lag: Optional[float], splits: Optional[str],
                 family_config: Union[Dict[str, Any], Any, None], train_config: Union[Dict[str, Any], Any],
                 output: str, progress: bool = True, threads: Optional[int] = None,
                 announce: Optional[Callable] = None, constraints: Optional[str] = None) -> FamilyTrainResult:
    """Train a flow of ``family_name`` on the MD runs under ``data_paths`` into ``output`` (resumable).

    A folder that already holds ``checkpoint.pt`` continues from it (same settings; the stopping
    rules, ``time_limit_s`` and ``patience``, may differ).

    Parameters
    ----------
    family_name : str
        A registered family (``cartesian``, ``internal``, ...).
    data_paths : sequence of str
        Folders with runs written by ``openmm-timewarp simulate``.
    lag : float, optional
        tau in picoseconds; None asks the family for a state-independent model.
    splits : str, optional
        A JSON splits file.
    family_config : dict or config, optional
        The family's config, or a dict of its fields.
    train_config : dict or TrainConfig
        The training settings, or a dict of :class:`~openmm_timewarp.lab.training.trainer.TrainConfig` fields.
    output : str
        The training folder (``run.json``, ``checkpoint.pt``, ``log.csv``).
    progress : bool
        A progress bar.
    threads : int, optional
        torch threads.
    announce : callable, optional
        Called with the data and the training config before training starts.
    constraints : {None, "none", "hbonds"}
        The bond constraints of the runs, checked against what they record (None: whatever they
        record). A family that holds constraints (``internal``) trains a flow that holds them.

    Returns
    -------
    FamilyTrainResult

    Raises
    ------
    TrainingDataError
        The data could not be read (a ValueError).
    ValueError
        Unknown family, bad settings, or a folder trained with other settings.
    """
    import torch

    from . import get_family
    from .runs import write_run_info
    from .trainer import TrainConfig, train_flow

    if threads:
        torch.set_num_threads(threads)
    family = get_family(family_name)
    if family_config is None or isinstance(family_config, dict):
        family_config = family.config(family_config)
    config = train_config if isinstance(train_config, TrainConfig) else TrainConfig(**train_config)
    try:
        data = family.training_data(list(data_paths), lag, splits)
    except (ValueError, FileNotFoundError) as error:
        raise TrainingDataError(str(error)) from error
    if constraints not in (None, "none") and "constraints" not in data.summary:
        raise TrainingDataError(f"the {family.name} family makes no models that hold bond constraints; use "
                                "--family internal.")
    made_with = data.summary.get("constraints", "none")
    if constraints is not None and constraints != made_with:
        raise TrainingDataError(f"the runs under {', '.join(data_paths)} were made with constraints={made_with!r}, "
                                f"not {constraints!r}.")
    torch.manual_seed(config.seed)
    flow = family.build(family_config, data)
    write_run_info(output, family.name, type(family_config)(**flow.config_dict), config, data)
    if announce is not None:
        announce(data, config)
    result = train_flow(flow, data.train, data.validation, data.collate, config, output, progress=progress,
                        loss=data.loss)
    return FamilyTrainResult(flow=result.flow, history=result.history, checkpoint=result.checkpoint,
                             log=result.log, data=data, config=config)
