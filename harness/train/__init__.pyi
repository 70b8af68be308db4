"""The public names of this package (loaded on first use: see __init__.py)."""

from .loop import CHECKPOINTS_DIR as CHECKPOINTS_DIR
from .loop import load_trajectory as load_trajectory
from .loop import train as train
from .models import DeqModel as DeqModel
from .models import MlpPinn as MlpPinn
from .models import as_torch as as_torch
from .report import write_training_report as write_training_report
from .settings import (
    TrainSettings as TrainSettings,
)
from .settings import (
    make_train_settings as make_train_settings,
)
from .settings import (
    physics_problems as physics_problems,
)
from .tables import final_table as final_table
from .tables import flat as flat
