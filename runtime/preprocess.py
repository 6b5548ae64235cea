"""Kept only for runtime/engine.py and runtime/forecast.py (the old Python engine, which issue 26
deletes): they import Preprocessor from here. Preprocessing lives in libswiftrt; use
runtime.core_preprocess. Delete this file with those two."""
from runtime.core_preprocess import Fit, Preprocessor, fit_frame, fit_geometry  # noqa: F401
