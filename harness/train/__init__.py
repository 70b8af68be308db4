"""Training (deqbench train): a PIDEQ trained with each strategy's gradient, its settings,
models, tables, figures and report.

The names below are what other packages (and users, tests and benchmarks) may use; every
other module here is internal. They load on first use (lazy_loader), so importing one
module of this package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=[],
    submod_attrs={
        "loop": ["train", "load_trajectory", "CHECKPOINTS_DIR"],
        "settings": ["TrainSettings", "make_train_settings", "physics_problems"],
        "models": ["DeqModel", "MlpPinn", "as_torch"],
        "tables": ["final_table", "flat"],
        "report": ["write_training_report"],
    },
)
