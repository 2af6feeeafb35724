"""End to end over loopback HTTP: the shapes of the programs a first real user wrote.

A RAG pipeline with a verifier over a 20-question batch (per-endpoint caps and rpm);
helper-built review branches with pydantic outputs; an optimization loop with
restore_best; faults with a checkpoint and a resume. Every call goes through httpx to
the simulator's HTTP server, whose own request log is what the asserts read.
"""

from __future__ import annotations

import itertools

import pydantic
from _exec_support import http_resources
from _sim_support import sim_server, sim_server_thread

import plait
from plait import Args, LLMInference, Module, ModuleDict, execute, run_batch, trace
from plait.optimization import Optimizer, VerifierLoss, train
from plait.optimization.demo import (
    JUDGE_RULES,
    START_INSTRUCTIONS,
    TASK_RULES,
    TRAIN_SET,
    UPDATER_RULES,
    VAL_SET,
    OrderNumberExtractor,
    order_number_check,
)
from plait.optimization.optimizer import UPDATER_SYSTEM

CORPUS = [f"doc{i}: fact number {i} about topic {i % 5}" for i in range(30)]


class Verdict(pydantic.BaseModel):
    supported: bool
    confidence: float


@plait.op
def retrieve(question: str, k: int) -> list[str]:
    topic = int(question.rsplit(" ", 1)[-1]) % 5
    return [doc for doc in CORPUS if doc.endswith(f"topic {topic}")][:k]


class RAG(Module):
    def __init__(self) -> None:
        super().__init__()
        self.answer = LLMInference("answer", system_prompt="Answer from the documents.")
        self.verify = LLMInference("verify", system_prompt="Verify.", response_format=Verdict)

    def forward(self, question, k=2):
        docs = retrieve(question, k)
        answer = self.answer(f"Documents: {docs}\nQuestion: {question}")
        verdict = self.verify(f"Question: {question}\nAnswer: {answer}")
        return {"answer": answer, "verdict": verdict, "supported": verdict["supported"]}


def peak_overlap(requests) -> int:
    """The most requests the server had in flight at once."""
    edges = sorted(
        itertools.chain.from_iterable(((r.arrival, 1), (r.finish, -1)) for r in requests),
        key=lambda e: (e[0], e[1]),
    )
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


async def test_rag_with_a_verifier_over_20_questions_respects_caps_and_rpm():
    questions = [f"what about {i}" for i in range(20)]
    items = [Args(q, k=1 + i % 3) for i, q in enumerate(questions)]
    with sim_server_thread(latency=0.3) as server:
        resources = plait.ResourceConfig(
            {
                **http_resources(server.url, "answer", max_concurrent=2, rpm=600).to_dict()[
                    "endpoints"
                ],
                **http_resources(server.url, "verify", max_concurrent=3).to_dict()["endpoints"],
            }
        )
        results = await run_batch(RAG(), items, resources=resources, progress=False)
        log = server.model.requests
    assert [r.ok for r in results] == [True] * 20
    for i, item in enumerate(results):
        assert isinstance(item.output["verdict"], Verdict)
        assert item.output["supported"] == item.output["verdict"].supported
        prompt = item.result.nodes["answer"].request.messages[-1]["content"]
        assert prompt.count("doc") == 1 + i % 3  # k reached retrieve, for every item
    answers = [r for r in log if r.model == "sim-answer"]
    verifies = [r for r in log if r.model == "sim-verify"]
    assert len(answers) == len(verifies) == 20
    assert peak_overlap(answers) <= 2 and peak_overlap(verifies) <= 3
    starts = sorted(r.arrival for r in answers)
    assert starts[-1] - starts[0] >= 19 * 0.1 * 0.9  # 600 rpm: one start every 0.1 s


def reviewer(aspects) -> ModuleDict:
    return ModuleDict(
        {
            a: LLMInference("review", system_prompt=f"Review for {a}.", response_format=Finding)
            for a in aspects
        }
    )


class Finding(pydantic.BaseModel):
    aspect: str
    severity: int
    notes: list[str]


def review_branch(llm, code, aspect):
    """A helper that builds one review branch: its nodes are grouped under its scope."""
    finding = llm(f"Aspect: {aspect}\nCode:\n{code}")
    return {"aspect": aspect, "finding": finding, "severity": finding["severity"]}


@plait.op
def worst(branches: list[dict]) -> str:
    return max(branches, key=lambda b: b["severity"])["aspect"]


class CodeReview(Module):
    def __init__(self) -> None:
        super().__init__()
        self.reviewers = reviewer(["security", "style", "tests"])
        self.summary = LLMInference("review", system_prompt="Summarize the reviews.")

    def forward(self, code):
        branches = [review_branch(llm, code, a) for a, llm in self.reviewers.items()]
        notes = [b["finding"]["notes"] for b in branches]
        return {
            "branches": branches,
            "worst": worst(branches),
            "summary": self.summary(f"Notes: {notes}"),
        }


async def test_helper_built_branches_with_pydantic_outputs():
    graph = trace(CodeReview(), "def f(): pass")
    llm_nodes = [n for n in graph.nodes.values() if n.kind is plait.NodeKind.LLM]
    scopes = sorted(n.scope for n in llm_nodes if n.id != "summary")
    assert scopes == [("review_branch#1",), ("review_branch#2",), ("review_branch#3",)]
    with sim_server_thread() as server:
        resources = http_resources(server.url, "review")
        result = await execute(CodeReview(), "def f(): pass", resources=resources)
        sent = len(server.model.requests)
    assert result.ok and sent == 4
    out = result.output
    findings = [b["finding"] for b in out["branches"]]
    assert all(isinstance(f, Finding) for f in findings)
    assert [b["severity"] for b in out["branches"]] == [f.severity for f in findings]
    assert out["worst"] == max(out["branches"], key=lambda b: b["severity"])["aspect"]
    summary_prompt = result.nodes["summary"].request.messages[-1]["content"]
    assert all(str(f.notes) in summary_prompt for f in findings)


async def test_optimization_with_restore_best_over_http():
    harmful = {
        "match": {"system": UPDATER_SYSTEM[:40]},
        "json": {"updates": [{"name": "instructions", "value": "Chat freely.", "rationale": "r"}]},
    }
    module = OrderNumberExtractor()
    async with sim_server(replies=[harmful, *UPDATER_RULES, *JUDGE_RULES, *TASK_RULES]) as server:
        resources = http_resources(server.url, "task", "judge", "optimizer")
        history = await train(
            module,
            TRAIN_SET,
            loss=VerifierLoss(order_number_check),
            optimizer=Optimizer(module),
            val_set=VAL_SET,
            batch_size=4,
            resources=resources,
            restore_best=True,
        )
        updates = [r for r in server.model.requests if r.model == "sim-optimizer"]
    assert len(updates) == 2 and history.rows[1]["updates"] == 1
    assert history.best_step == 0 and history.restored
    assert max(history.val_scores[1:]) <= history.val_scores[0]
    assert module.instructions.value == START_INSTRUCTIONS


class Chain(Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = LLMInference("fast", system_prompt="Draft.")
        self.polish = LLMInference("fast", system_prompt="Polish.")

    def forward(self, text):
        return self.polish(self.draft(text))


async def test_faults_with_a_checkpoint_then_a_resume_that_repeats_nothing(tmp_path):
    texts = [f"text {i}" for i in range(12)]
    path = tmp_path / "batch.jsonl"
    fault = {"kind": "server_error", "status": 503, "rate": 0.4, "match": {"system": "Polish"}}
    with sim_server_thread(faults=[fault], seed=3) as server:
        resources = http_resources(server.url, "fast", max_retries=0)
        first = await run_batch(
            Chain(), texts, resources=resources, checkpoint=path, progress=False
        )
        first_requests = len(server.model.requests)
    failed = [item.index for item in first if not item.ok]
    assert 0 < len(failed) < len(texts)
    assert all("503" in str(first[i].error) for i in failed)
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast", max_retries=0)
        second = await run_batch(
            Chain(), texts, resources=resources, checkpoint=path, progress=False
        )
        resent = server.model.requests
    assert all(item.ok for item in second)
    # Only the failed polish calls ran again: every draft and every good polish was restored.
    assert len(resent) == len(failed)
    assert all(r.messages[0]["content"] == "Polish." for r in resent)
    for item in first:
        if item.ok:
            assert second[item.index].output == item.output
            assert second[item.index].result.nodes["polish"].restored
    assert first_requests == len(texts) * 2
    with sim_server_thread() as server:
        clean = await run_batch(
            Chain(), texts, resources=http_resources(server.url, "fast"), progress=False
        )
    assert [i.output for i in second] == [i.output for i in clean]
