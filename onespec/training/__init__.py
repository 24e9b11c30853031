"""Training and evaluation of any onespec model in any framework from one recipe."""
from .engine import TrainError
from .recipe import Recipe, RecipeError, load_recipe
from .schedule import schedule
from .trainer import History, evaluate, train

__all__ = ["History", "TrainError", "evaluate", "train", "Recipe", "RecipeError",
           "load_recipe", "schedule"]
