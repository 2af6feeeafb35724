import plait


def test_public_names_are_pinned():
    assert plait.__all__ == sorted(plait.__all__)
    required = {
        "CallError",
        "ConfigError",
        "ExecutionError",
        "LLMInference",
        "Module",
        "ModuleDict",
        "ModuleList",
        "Parameter",
        "ParameterDict",
        "ParameterList",
        "PlaitError",
        "Sequential",
        "TraceError",
        "Value",
        "ValueKind",
        "ValueRef",
        "unwrap",
        "reply",
        "stock",
        "valueify",
        "evaluate",
        "evaluate_sync",
        "EvalResult",
        "Comparison",
        "RunStore",
        "StoreError",
    }
    assert required <= set(plait.__all__)
    for name in plait.__all__:
        assert getattr(plait, name) is not None


def test_stock_modules_are_pinned():
    assert plait.stock.__all__ == [
        "LIST_SCHEMA",
        "VERDICT_SCHEMA",
        "LoopLimitError",
        "MapList",
        "Refine",
        "ToolAgent",
        "tool_schema",
    ]
    assert plait.stock.LoopLimitError is plait.errors.LoopLimitError


def test_error_tree_has_one_root():
    from plait import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert all(issubclass(c, errors.PlaitError) for c in classes)
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.ContextLengthError, errors.BadRequestError)
    assert issubclass(errors.BudgetExceeded, errors.ExecutionError)
    assert issubclass(errors.CallError, errors.ExecutionError)
    for name in ("RateLimitError", "TransientError", "ProviderTimeout"):
        assert getattr(errors, name).retryable
    for name in ("AuthenticationError", "BadRequestError"):
        assert not getattr(errors, name).retryable
