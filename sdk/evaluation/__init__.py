"""Measuring: IR metrics (pytrec_eval), exact top-k, a model's retrieval quality, and the relevance filter's quality."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "average_precision": "._metrics",
        "evaluate_hybrid": "._hybrid",
        "evaluate_collection": "._filtering",
        "evaluate_filtering": "._filtering",
        "evaluate_model": "._retrieval",
        "exact_search": "._retrieval",
        "exact_top_k": "tamis._math",
        "ir_metrics": "._metrics",
        "plot_pr_curves": "._filtering",
        "pr_curve": "._metrics",
        "precision_at_recall": "._metrics",
        "sample_split": "._retrieval",
    },
)
