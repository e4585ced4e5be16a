"""Input and output models: validation rules, error messages, derived GPU ids and JSON Schema."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from gpuplan import GPU, GPUType, Matrix, MatrixProblem, Node, Plan, Problem, SolveOptions, Status, Task

A100 = {"name": "A100", "memory_gb": 80}
L4 = {"name": "L4", "memory_gb": 24, "speed": 0.5}


def problem(**changes: object) -> dict:
    """A small valid Problem as a dict, with some top-level keys replaced."""
    data: dict = {
        "gpu_types": [A100, L4],
        "nodes": [
            {"id": "n1", "gpu_counts": {"A100": 2}},
            {"id": "n2", "gpus": [{"id": "edge", "type": "L4"}]},
        ],
        "tasks": [{"id": "train", "work_h": 4}, {"id": "eval", "work_h": 1, "gpu_share": 0.5}],
    }
    data.update(changes)
    return data


def error_text(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    """All error messages of a ValidationError joined into one string."""
    return " | ".join(e["msg"] for e in exc.value.errors())


# --- valid input ---------------------------------------------------------------------------------


def test_valid_problem_parses():
    """A well-formed problem parses, with defaults for omitted fields."""
    p = Problem.model_validate(problem())
    assert [t.id for t in p.tasks] == ["train", "eval"]
    assert p.tasks[0].gpu_share == 1.0
    assert p.tasks[0].optional is False
    assert p.tasks[0].priority == 0
    assert p.horizon_h is None
    assert p.options.solver == "auto"


def test_all_gpus_ids_for_counted_gpus():
    """Counted GPUs get ids '<node>/<type>/<k>', listed GPUs keep theirs and come first per node."""
    p = Problem.model_validate(
        problem(
            nodes=[
                {"id": "n1", "gpus": [{"id": "x", "type": "L4"}], "gpu_counts": {"A100": 2, "L4": 1}},
                {"id": "n2", "gpu_counts": {"L4": 0}},
                {"id": "n3", "gpu_counts": {"A100": 1}},
            ]
        )
    )
    got = [(node.id, gpu.id, gpu.type) for node, gpu in p.all_gpus()]
    assert got == [
        ("n1", "x", "L4"),
        ("n1", "n1/A100/0", "A100"),
        ("n1", "n1/A100/1", "A100"),
        ("n1", "n1/L4/0", "L4"),
        ("n3", "n3/A100/0", "A100"),
    ]
    assert p.type_counts() == {"A100": 3, "L4": 2}
    assert p.gpu_type("L4").memory_gb == 24


def test_gpu_type_lookup_unknown_raises_keyerror():
    """Problem.gpu_type raises KeyError for a name that is not a GPU type."""
    p = Problem.model_validate(problem())
    with pytest.raises(KeyError):
        p.gpu_type("V100")


# --- frozen and extra="forbid" -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (Task(id="t", work_h=1), "id", "other"),
        (GPUType(name="A", memory_gb=8), "memory_gb", 16),
        (GPU(id="g", type="A"), "healthy", False),
        (Node(id="n"), "id", "m"),
        (Problem.model_validate(problem()), "horizon_h", 3.0),
        (Matrix(cost=[[1]], load=[[1]], capacity=[1]), "capacity", [2]),
    ],
)
def test_models_are_frozen(model, field, value):
    """Assigning to a field of an input model raises."""
    with pytest.raises(ValidationError, match="frozen"):
        setattr(model, field, value)


def test_plan_is_frozen():
    """The output Plan is immutable too."""
    plan = Plan(status=Status.UNKNOWN, solver="greedy", solver_requested="greedy", wall_time_s=0.0)
    with pytest.raises(ValidationError, match="frozen"):
        plan.objective = 1.0


@pytest.mark.parametrize(
    ("cls", "data"),
    [
        (Task, {"id": "t", "work_h": 1, "replicas": 2}),
        (GPUType, {"name": "A", "memory_gb": 8, "tflops": 3}),
        (GPU, {"id": "g", "type": "A", "serial": "x"}),
        (Node, {"id": "n", "rack": 3}),
        (SolveOptions, {"timeout": 3}),
        (Matrix, {"cost": [[1]], "load": [[1]], "capacity": [1], "weights": [1]}),
        (MatrixProblem, {"matrix": {"cost": [[1]], "load": [[1]], "capacity": [1]}, "extra": 1}),
    ],
)
def test_unknown_keys_rejected(cls, data):
    """extra='forbid': an unknown key is an error that names the key."""
    with pytest.raises(ValidationError) as exc:
        cls.model_validate(data)
    errors = exc.value.errors()
    assert errors[0]["type"] == "extra_forbidden"
    unknown = (set(data) - set(cls.model_fields)).pop()
    assert errors[0]["loc"][-1] == unknown


def test_unknown_top_level_problem_key_rejected():
    """An unknown top-level key of a Problem is rejected."""
    with pytest.raises(ValidationError) as exc:
        Problem.model_validate(problem(budget=3))
    assert exc.value.errors()[0]["loc"] == ("budget",)


# --- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "build",
    [
        lambda v: Task(id="t", work_h=v),
        lambda v: Task(id="t", work_h=1, gpu_memory_gb=v),
        lambda v: Task(id="t", duration_h={"A": v}),
        lambda v: GPUType(name="A", memory_gb=v),
        lambda v: GPUType(name="A", memory_gb=8, speed=v),
        lambda v: GPU(id="g", type="A", temperature_c=v),
        lambda v: Problem.model_validate(problem(horizon_h=v)),
        lambda v: Matrix(cost=[[v]], load=[[1]], capacity=[1]),
        lambda v: Matrix(cost=[[1]], load=[[v]], capacity=[1]),
        lambda v: Matrix(cost=[[1]], load=[[1]], capacity=[v]),
        lambda v: Matrix(cost=[[1]], load=[[[v]]], capacity=[[1]]),
        lambda v: Matrix(cost=[[1]], load=[[[1]]], capacity=[[v]]),
    ],
)
def test_non_finite_numbers_rejected(build, bad):
    """NaN and infinities are rejected everywhere a number is read."""
    with pytest.raises(ValidationError):
        build(bad)


@pytest.mark.parametrize("share", [1e-6, 0.25, 0.5, 1.0])
def test_gpu_share_in_range_accepted(share):
    """gpu_share in (0, 1] is accepted."""
    assert Task(id="t", work_h=1, gpu_share=share).gpu_share == share


@pytest.mark.parametrize("share", [0.0, -0.5, 1.0000001, 1.5, 2])
def test_gpu_share_out_of_range_rejected(share):
    """gpu_share outside (0, 1] is rejected, naming the field."""
    with pytest.raises(ValidationError) as exc:
        Task(id="t", work_h=1, gpu_share=share)
    assert exc.value.errors()[0]["loc"] == ("gpu_share",)


@pytest.mark.parametrize(
    ("cls", "data", "field"),
    [
        (Task, {"id": "t", "work_h": 0}, "work_h"),
        (Task, {"id": "t", "work_h": -1}, "work_h"),
        (Task, {"id": "t", "work_h": 1, "gpu_memory_gb": -1}, "gpu_memory_gb"),
        (Task, {"id": "t", "work_h": 1, "priority": 1.5}, "priority"),
        (Task, {"id": "", "work_h": 1}, "id"),
        (GPUType, {"name": "A", "memory_gb": 0}, "memory_gb"),
        (GPUType, {"name": "A", "memory_gb": 8, "speed": 0}, "speed"),
        (GPUType, {"name": "A", "memory_gb": 8, "cost_per_hour": -1}, "cost_per_hour"),
        (SolveOptions, {"time_limit_s": 0}, "time_limit_s"),
        (SolveOptions, {"workers": 0}, "workers"),
        (SolveOptions, {"solver": "gurobi"}, "solver"),
    ],
)
def test_field_constraints(cls, data, field):
    """Out-of-range scalar fields are rejected and the error is located at the field."""
    with pytest.raises(ValidationError) as exc:
        cls.model_validate(data)
    assert exc.value.errors()[0]["loc"][0] == field


def test_negative_gpu_count_rejected():
    """A negative gpu_counts entry is rejected, naming the type."""
    with pytest.raises(ValidationError) as exc:
        Node(id="n", gpu_counts={"A100": -1})
    assert "gpu_counts['A100']" in error_text(exc)


def test_horizon_must_be_positive():
    """horizon_h must be > 0."""
    with pytest.raises(ValidationError):
        Problem.model_validate(problem(horizon_h=0))


# --- task durations ------------------------------------------------------------------------------


def test_task_needs_work_or_duration():
    """A task with neither work_h nor duration_h is rejected."""
    with pytest.raises(ValidationError) as exc:
        Task(id="t")
    assert "work_h or duration_h" in error_text(exc)


def test_task_empty_duration_map_rejected():
    """An empty duration_h map does not count as a duration."""
    with pytest.raises(ValidationError, match="work_h or duration_h"):
        Task(id="t", duration_h={})


def test_task_duration_must_be_positive():
    """Explicit durations must be > 0, and the error names the GPU type."""
    with pytest.raises(ValidationError) as exc:
        Task(id="t", duration_h={"A100": 0})
    assert "duration_h['A100']" in error_text(exc)


def test_task_with_duration_only_is_valid():
    """duration_h alone is enough."""
    assert Task(id="t", duration_h={"A100": 2.0}).work_h is None


# --- references and duplicates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"tasks": [{"id": "a", "work_h": 1}, {"id": "a", "work_h": 2}]}, ["tasks[1].id", "'a'"]),
        ({"nodes": [{"id": "n1"}, {"id": "n1"}]}, ["nodes[1].id", "'n1'"]),
        ({"gpu_types": [A100, L4, A100]}, ["gpu_types[2].name", "'A100'"]),
        (
            {
                "nodes": [
                    {"id": "n1", "gpus": [{"id": "g", "type": "L4"}]},
                    {"id": "n2", "gpus": [{"id": "g", "type": "L4"}]},
                ]
            },
            ["duplicate GPU id", "'g'"],
        ),
        (
            {"nodes": [{"id": "n1", "gpus": [{"id": "n1/A100/0", "type": "L4"}], "gpu_counts": {"A100": 1}}]},
            ["duplicate GPU id", "'n1/A100/0'"],
        ),
    ],
)
def test_duplicate_ids_named(changes, needles):
    """Duplicate task, node, GPU-type and GPU ids are rejected and the error names the id."""
    with pytest.raises(ValidationError) as exc:
        Problem.model_validate(problem(**changes))
    text = error_text(exc)
    assert "duplicate" in text
    for needle in needles:
        assert needle in text


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        (
            {"nodes": [{"id": "n1", "gpu_counts": {"V100": 2}}]},
            ["nodes[0].gpu_counts", "'V100'", "'n1'", "known: A100, L4"],
        ),
        (
            {"nodes": [{"id": "n1", "gpus": [{"id": "g0", "type": "H200"}]}]},
            ["nodes[0].gpus[0].type", "'H200'", "known: A100, L4"],
        ),
        (
            {"tasks": [{"id": "t", "work_h": 1, "allowed_types": ["A100", "TPU"]}]},
            ["tasks[0].allowed_types[1]", "'TPU'", "'t'", "known: A100, L4"],
        ),
        ({"tasks": [{"id": "t", "duration_h": {"MI300": 2}}]}, ["tasks[0].duration_h", "'MI300'"]),
    ],
)
def test_unknown_gpu_types_named(changes, needles):
    """A reference to an undeclared GPU type is rejected; the error names the type and where."""
    with pytest.raises(ValidationError) as exc:
        Problem.model_validate(problem(**changes))
    text = error_text(exc)
    assert "unknown GPU type" in text
    for needle in needles:
        assert needle in text


# --- matrix form -------------------------------------------------------------------------------------


def test_matrix_shapes_normalized():
    """2-D load and 1-D capacity are read as a single resource."""
    m = Matrix(cost=[[1, None]], load=[[2, None]], capacity=[3, 4])
    assert m.n_tasks == 1 and m.n_gpus == 2
    assert m.loads() == [[[2.0, None]]]
    assert m.capacities() == [[3.0, 4.0]]
    m2 = Matrix(cost=[[1, 2]], load=[[[1, 1]], [[2, 2]]], capacity=[[1, 1], [2, 2]])
    assert len(m2.loads()) == 2 and len(m2.capacities()) == 2


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"cost": [[1, 2], [3]], "load": [[1, 1], [1]], "capacity": [1, 1]}, "matrix.cost[1]"),
        ({"cost": [[1, 2]], "load": [[1, 1]], "capacity": [1]}, "matrix.capacity"),
        ({"cost": [[1, 2]], "load": [[1, 1]], "capacity": [1, -1]}, "matrix.capacity[1]"),
        ({"cost": [[1, 2]], "load": [[1, 1], [1, 1]], "capacity": [1, 1]}, "matrix.load"),
        ({"cost": [[1, 2]], "load": [[1, None]], "capacity": [1, 1]}, "matrix.load[0][1]"),
        ({"cost": [[1, 2]], "load": [[1, -2]], "capacity": [1, 1]}, "matrix.load[0][1]"),
        ({"cost": [[1, 2]], "load": [[[1, 1]], [[1, 1]]], "capacity": [1, 1]}, "2 resources"),
        ({"cost": [[1, 2]], "load": [[1, 1]], "capacity": [1, 1], "task_ids": ["a", "b"]}, "matrix.task_ids"),
        ({"cost": [[1, 2]], "load": [[1, 1]], "capacity": [1, 1], "gpu_ids": ["g", "g"]}, "duplicate id 'g'"),
        ({"cost": [[]], "load": [[]], "capacity": []}, "at least one GPU"),
    ],
)
def test_matrix_validation_names_field(data, needle):
    """Malformed matrices are rejected with the offending field in the message."""
    with pytest.raises(ValidationError) as exc:
        Matrix.model_validate(data)
    assert needle in error_text(exc)


def test_matrix_null_load_allowed_where_cost_null():
    """A null load is fine where the pair is forbidden anyway; an all-null row is valid input."""
    m = Matrix(cost=[[None, 1], [None, None]], load=[[None, 1], [None, None]], capacity=[1, 1])
    assert m.cost[1] == [None, None]


# --- JSON Schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [Problem, MatrixProblem, Plan])
def test_json_schema_generation(model):
    """JSON Schema generation works and round-trips through json."""
    schema = json.loads(json.dumps(model.model_json_schema()))
    assert schema["type"] == "object"
    assert schema["properties"]


def test_problem_schema_details():
    """The problem schema forbids extra keys and carries the gpu_share range."""
    schema = Problem.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"gpu_types", "nodes", "tasks"}
    share = schema["$defs"]["Task"]["properties"]["gpu_share"]
    assert share["exclusiveMinimum"] == 0
    assert share["maximum"] == 1


def test_plan_round_trips_through_json():
    """A Plan dumps to JSON and validates back to an equal Plan."""
    plan = Plan(
        status=Status.OPTIMAL,
        objective=1.0,
        bound=1.0,
        gap=0.0,
        solver="cpsat",
        solver_requested="auto",
        wall_time_s=0.1,
    )
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    assert plan.is_feasible
    assert not Status.INFEASIBLE.has_solution
