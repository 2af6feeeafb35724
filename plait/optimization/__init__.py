"""Feedback-driven optimization: losses, backward, and an optimizer whose steps are reviewable.

The loop mirrors PyTorch's::

    pipeline.train()                                  # runs now return outputs with records
    items = await plait.run_batch(pipeline, inputs, resources=resources)
    feedback = await loss(items, targets)             # one Feedback per sample
    await feedback.backward()                         # parameters accumulate feedback
    await optimizer.step()                            # ordered, module-cohesive LLM updates
    optimizer.zero_feedback()

`train` wraps that loop with validation, a cost budget and early stopping.
For review, ``await optimizer.propose()`` returns `UpdateProposal`s to
accept, edit or reject before ``optimizer.apply()``; the audit log records
every decision. `plait.optimization.demo` is a scripted offline task.
"""

from plait.execution.records import ForwardRecord, attach_record, record_of
from plait.optimization.backward import BackwardStep, BackwardStrategy, LLMBackward, RouteBackward
from plait.optimization.feedback import FEEDBACK_KINDS, Feedback, FeedbackBatch
from plait.optimization.judges import LLMJudge, PreferenceLoss, RankingLoss, RubricLoss
from plait.optimization.losses import CompositeLoss, HumanFeedback, Loss, VerifierLoss
from plait.optimization.optimizer import Optimizer
from plait.optimization.ordering import UpdatePlan, plan_updates
from plait.optimization.proposals import AuditLog, UpdateProposal
from plait.optimization.train import TrainHistory, train

__all__ = [
    "FEEDBACK_KINDS",
    "AuditLog",
    "BackwardStep",
    "BackwardStrategy",
    "CompositeLoss",
    "Feedback",
    "FeedbackBatch",
    "ForwardRecord",
    "HumanFeedback",
    "LLMBackward",
    "LLMJudge",
    "Loss",
    "Optimizer",
    "PreferenceLoss",
    "RankingLoss",
    "RouteBackward",
    "RubricLoss",
    "TrainHistory",
    "UpdatePlan",
    "UpdateProposal",
    "VerifierLoss",
    "attach_record",
    "plan_updates",
    "record_of",
    "train",
]
