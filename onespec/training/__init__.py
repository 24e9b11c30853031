"""Training and evaluation of any onespec model in any framework from one recipe."""
from .engine import TrainError, resolve_model
from .recipe import Recipe, RecipeError, load_recipe
from .schedule import schedule
from .trainer import History, evaluate, train

__all__ = ["History", "TrainError", "evaluate", "resolve_model", "train", "Recipe", "RecipeError",
           "load_recipe", "schedule"]
