"""Latent-space optimization: objectives, constraints, an oracle with a budget, optimizers, outputs.

* :mod:`~molgen.optimize.objectives` -- objective specs (``qed``, ``qed:1,sa:-0.3``,
  ``logp=2.5``, ``sim(SMILES)``, ``module:function``);
* :mod:`~molgen.optimize.constraints` -- hard constraints (``mw<=450``, ``sim>=0.4``);
* :mod:`~molgen.optimize.oracle` -- scoring, de-duplication, budget, JSONL log;
* :mod:`~molgen.optimize.predictor` -- fitting and saving latent property predictors;
* :mod:`~molgen.optimize.gradient` -- gradient ascent on z against a predictor;
* :mod:`~molgen.optimize.bo` -- Bayesian optimization (BoTorch GP, Thompson sampling, trust regions);
* :mod:`~molgen.optimize.pmo` -- the 20 RDKit-only PMO tasks (``pmo:<task>``) and AUC top-10;
* :mod:`~molgen.optimize.outputs` -- ranked CSV, top-molecule grid, best-so-far plot;
* :mod:`~molgen.optimize.scoring` -- scoring files (``--objective scoring.toml``): many components,
  desirability transforms (:mod:`~molgen.optimize.desirability`), weighted means;
* :mod:`~molgen.optimize.pareto` -- the non-dominated set over 2-3 components (``--pareto``);
* :mod:`~molgen.optimize.api` -- :func:`optimize`, the one-call entry point;
* :mod:`~molgen.optimize.request` -- :class:`OptimizeConfig` (``--config optimize.toml``) and :func:`run_optimize`.

Example::

    >>> from molgen.optimize import optimize                            # doctest: +SKIP
    >>> result = optimize("qed", budget=2000, out_dir="best", seed=0)    # doctest: +SKIP
"""

from typing import TYPE_CHECKING

from molgen.utils import lazy_exports

if TYPE_CHECKING:
    from molgen.optimize.api import (
        METHODS,
        MethodContext,
        OptimizationResult,
        build_constraints,
        optimize,
        register_method,
    )
    from molgen.optimize.bo import BOConfig, BORun, optimize_bo
    from molgen.optimize.constraints import Constraint, ConstraintSet
    from molgen.optimize.desirability import Transform, aggregate
    from molgen.optimize.gradient import GradientConfig, GradientRun, optimize_gradient
    from molgen.optimize.objectives import (
        Objective,
        Term,
        load_user_function,
        parse_objective,
        register_term_prefix,
    )
    from molgen.optimize.oracle import Oracle, OracleRecord
    from molgen.optimize.outputs import OUTPUT_FILES, results_frame, write_outputs
    from molgen.optimize.pareto import pareto_front, pareto_mask, write_pareto
    from molgen.optimize.predictor import (
        PredictorReport,
        PredictorTrainingConfig,
        TrainedPredictor,
        fit_predictor,
        load_predictor,
        save_predictor,
        train_label_predictor,
        train_property_predictor,
    )
    from molgen.optimize.request import OptimizeConfig, report_lines, run_optimize
    from molgen.optimize.scoring import (
        ScoringConfig,
        ScoringObjective,
        build_scoring,
        load_scoring,
        load_scoring_config,
    )
    from molgen.optimize.user_objective import (
        ObjectiveSignatureError,
        UserObjective,
        batch,
        per_molecule,
    )

__all__ = [
    "optimize",
    "OptimizationResult",
    "MethodContext",
    "METHODS",
    "register_method",
    "build_constraints",
    "Constraint",
    "ConstraintSet",
    "BOConfig",
    "BORun",
    "optimize_bo",
    "GradientConfig",
    "GradientRun",
    "optimize_gradient",
    "Objective",
    "Term",
    "parse_objective",
    "load_user_function",
    "register_term_prefix",
    "UserObjective",
    "ObjectiveSignatureError",
    "per_molecule",
    "batch",
    "Oracle",
    "OracleRecord",
    "OUTPUT_FILES",
    "results_frame",
    "write_outputs",
    "PredictorReport",
    "PredictorTrainingConfig",
    "TrainedPredictor",
    "fit_predictor",
    "load_predictor",
    "save_predictor",
    "train_label_predictor",
    "train_property_predictor",
    "Transform",
    "aggregate",
    "pareto_front",
    "pareto_mask",
    "write_pareto",
    "ScoringConfig",
    "ScoringObjective",
    "build_scoring",
    "load_scoring",
    "load_scoring_config",
    "OptimizeConfig",
    "run_optimize",
    "report_lines",
]

# Imported on first use, so that the command line's --help does not load torch, BoTorch and scipy.
__getattr__ = lazy_exports(
    __name__,
    {
        "molgen.optimize.api": ("METHODS", "MethodContext", "OptimizationResult", "build_constraints", "optimize", "register_method"),
        "molgen.optimize.bo": ("BOConfig", "BORun", "optimize_bo"),
        "molgen.optimize.constraints": ("Constraint", "ConstraintSet"),
        "molgen.optimize.gradient": ("GradientConfig", "GradientRun", "optimize_gradient"),
        "molgen.optimize.objectives": ("Objective", "Term", "load_user_function", "parse_objective", "register_term_prefix"),
        "molgen.optimize.oracle": ("Oracle", "OracleRecord"),
        "molgen.optimize.user_objective": ("ObjectiveSignatureError", "UserObjective", "batch", "per_molecule"),
        "molgen.optimize.outputs": ("OUTPUT_FILES", "results_frame", "write_outputs"),
        "molgen.optimize.desirability": ("Transform", "aggregate"),
        "molgen.optimize.pareto": ("pareto_front", "pareto_mask", "write_pareto"),
        "molgen.optimize.request": ("OptimizeConfig", "report_lines", "run_optimize"),
        "molgen.optimize.scoring": ("ScoringConfig", "ScoringObjective", "build_scoring", "load_scoring", "load_scoring_config"),
        "molgen.optimize.predictor": (
            "PredictorReport",
            "PredictorTrainingConfig",
            "TrainedPredictor",
            "fit_predictor",
            "load_predictor",
            "save_predictor",
            "train_label_predictor",
            "train_property_predictor",
        ),
    },
)
