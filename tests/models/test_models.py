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


# --- time: scheduled problems ---------------------------------------------------------------------


def test_task_time_fields_default_to_unscheduled():
    """Without time fields a problem is placement-only; the time fields take their defaults."""
    p = Problem.model_validate(problem())
    task = p.tasks[0]
    assert (task.release_h, task.deadline_h, task.due_h, task.after, task.weight) == (
        0.0,
        None,
        None,
        [],
        1.0,
    )
    assert not p.scheduled and p.time_field() is None


@pytest.mark.parametrize(
    ("task_changes", "objective", "field"),
    [
        ({"release_h": 2}, None, "tasks[1].release_h"),
        ({"deadline_h": 5}, None, "tasks[1].deadline_h"),
        ({"due_h": 0}, None, "tasks[1].due_h"),
        ({"after": ["train"]}, None, "tasks[1].after"),
        ({}, {"kind": "makespan"}, "objective.kind"),
        ({}, {"kind": "completion_time"}, "objective.kind"),
        (
            {},
            {"kind": "weighted", "terms": [{"kind": "cost"}, {"kind": "tardiness"}]},
            "objective.terms[1].kind",
        ),
        ({}, {"kind": "lexicographic", "terms": [{"kind": "makespan"}]}, "objective.terms[0].kind"),
    ],
)
def test_scheduled_names_the_first_time_field(task_changes, objective, field):
    """Each time field, and each time criterion (alone or as a term), makes the problem scheduled."""
    data = problem()
    data["tasks"][1].update(task_changes)
    if objective is not None:
        data["objective"] = objective
    p = Problem.model_validate(data)
    assert p.scheduled and p.time_field() == field


def test_release_zero_and_weight_alone_do_not_schedule():
    """release_h 0 is the default start, and a weight alone weighs nothing: still placement-only."""
    data = problem()
    data["tasks"][0].update({"release_h": 0, "weight": 3})
    assert not Problem.model_validate(data).scheduled


def test_objective_weights_carry_time_criteria():
    """Time criteria are terms like the others in weights()."""
    obj = Problem.model_validate(
        problem(
            objective={"kind": "weighted", "terms": [{"kind": "makespan", "weight": 2}, {"kind": "cost"}]}
        )
    ).objective
    assert obj.weights() == [("makespan", 2.0), ("cost", 1.0)]


def _chain(n: int) -> list[dict]:
    return [{"id": f"t{i}", "work_h": 1, **({"after": [f"t{i - 1}"]} if i else {})} for i in range(n)]


def test_long_chain_is_valid_without_recursion():
    """A 100,000-task chain of `after` validates (the cycle check is iterative and linear)."""
    p = Problem.model_validate(problem(tasks=_chain(100_000)))
    assert p.scheduled and p.tasks[-1].after == ["t99998"]


def test_long_cycle_is_named_briefly():
    """A cycle through 100,000 tasks is found and shown by its first tasks and its size."""
    tasks = _chain(100_000)
    tasks[0]["after"] = ["t99999"]
    with pytest.raises(ValidationError) as exc:
        Problem.model_validate(problem(tasks=tasks))
    msg = error_text(exc)
    assert "tasks[0].after: cycle t0 -> t1 -> t2 -> t3 -> t4 -> t5 -> ... -> t99999 -> t0" in msg
    assert "100000 tasks" in msg and len(msg) < 200


def test_cycle_is_shown_in_running_order_from_its_first_task():
    """The cycle starts at its task listed first and follows 'ends before': c before b before a."""
    tasks = [
        {"id": "x", "work_h": 1},
        {"id": "a", "work_h": 1, "after": ["b"]},
        {"id": "b", "work_h": 1, "after": ["x", "c"]},
        {"id": "c", "work_h": 1, "after": ["a"]},
        {"id": "y", "work_h": 1, "after": ["c"]},  # hangs off the cycle, not in it
    ]
    with pytest.raises(ValidationError) as exc:
        Problem.model_validate(problem(tasks=tasks))
    assert "tasks[1].after: cycle a -> c -> b -> a" in error_text(exc)


def test_diamond_is_not_a_cycle():
    """Two paths to one task are fine."""
    tasks = [
        {"id": "a", "work_h": 1},
        {"id": "b", "work_h": 1, "after": ["a"]},
        {"id": "c", "work_h": 1, "after": ["a"]},
        {"id": "d", "work_h": 1, "after": ["b", "c"]},
    ]
    assert Problem.model_validate(problem(tasks=tasks)).tasks[3].after == ["b", "c"]


def test_task_field_check_is_reported_at_the_field():
    """A task's own check that names its field reads as that field's path on the command line."""
    from gpuplan.models.validation import format_validation_error

    data = problem()
    data["tasks"][1].update({"release_h": 4, "deadline_h": 1.5})
    with pytest.raises(ValidationError) as exc:
        Problem.model_validate(data)
    err = format_validation_error(exc.value)
    assert (err.path, err.message) == (
        "tasks[1].deadline_h",
        "1.5 h is not later than release_h 4 h, so the task has no time to run",
    )


def test_time_fields_in_the_schema():
    """The schema documents the time fields, the time criteria and the plan's times."""
    task = Problem.model_json_schema()["$defs"]["Task"]["properties"]
    for name in ("release_h", "deadline_h", "due_h", "after", "weight"):
        assert task[name]["description"]
    assert "at any instant" in task["anti_affinity"]["description"]
    kinds = Problem.model_json_schema()["$defs"]["Term"]["properties"]["kind"]["enum"]
    assert {"makespan", "completion_time", "tardiness"} <= set(kinds)
    assignment = Plan.model_json_schema()["$defs"]["Assignment"]["properties"]
    assert assignment["start_h"]["description"] and assignment["end_h"]["description"]
    assert (
        Plan(status=Status.FEASIBLE, solver="x", solver_requested="x", wall_time_s=0).schema_version == "1.4"
    )
