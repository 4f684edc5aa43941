"""The trainer's view of checkpoints: the format lives in `paris_node.checkpoint` (one place for every layer);
these names are kept so training code and its tests read as before."""

from paris_node.checkpoint import (  # noqa: F401  (re-exported)
    CONFIG,
    STATE_JSON,
    STATE_TENSORS,
    WEIGHTS,
    load_model,
    load_training_state,
    read_config,
    save_checkpoint,
)
