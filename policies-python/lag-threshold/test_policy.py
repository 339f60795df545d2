"""Native unit tests of the policy logic: ``python -m unittest`` (or ``python -m pytest``).

No wasm and no bindings: inputs are ``SimpleNamespace`` objects with the attribute names of the
WIT ``decision-input`` in snake_case, as the componentize-py dataclasses have them.
"""

import math
import re
import unittest
from types import SimpleNamespace as NS

from policy_logic import NAME, PARAMS, PolicyFailure, evaluate


def obs(at_s, parallelism, lag, partitions=0):
    op = lambda op_id, upstream, max_par: NS(  # noqa: E731
        operator_id=op_id,
        upstream=upstream,
        parallelism=parallelism,
        max_parallelism=max_par,
        busy_ratio=0.5,
        backpressure_ratio=0.0,
        records_in_per_sec=1000.0,
        records_out_per_sec=1000.0,
    )
    return NS(
        at_ms=at_s * 1000,
        parallelism=parallelism,
        input_records_per_sec=1000.0,
        throughput_records_per_sec=1000.0,
        lag_records=lag,
        workers=[],
        operators=[op("src", [], partitions), op("work", ["src"], 128)],
    )


def inp(parallelism, lag, params=(), history=(), partitions=0, low=1, high=10):
    return NS(
        job_id="job",
        now_ms=1_000_000,
        current=obs(1000, parallelism, lag, partitions),
        history=list(history),
        bounds=NS(min_parallelism=low, max_parallelism=high),
        latency_objective_ms=None,
        rescale=NS(in_progress=False, started_ms=None, last_finished_ms=None, count=0),
        previous=None,
        params=list(params),
        state=None,
    )


def target(i):
    """`None` for hold, else the job parallelism."""
    return evaluate(i).target


class PolicyTest(unittest.TestCase):
    def assert_fails(self, kind, i, key=None):
        with self.assertRaises(PolicyFailure) as ctx:
            evaluate(i)
        self.assertEqual(ctx.exception.kind, kind)
        if key is not None:
            self.assertIn(key, ctx.exception.message)

    def test_describe_documents_three_parameters(self):
        self.assertEqual(NAME, "lag-threshold-py")
        params = PARAMS
        self.assertEqual(
            [(p.name, p.default_value) for p in params],
            [
                ("lag_per_worker", "100000"),
                ("activation_lag", "0"),
                ("scale_down_stabilization_secs", "300"),
            ],
        )
        for p in params:
            self.assertRegex(p.description, r"\(.*(records|seconds).*\)")

    def test_one_worker_per_lag_per_worker_within_bounds(self):
        self.assertEqual(target(inp(1, 350_000)), 4)
        self.assertIsNone(target(inp(4, 350_000)))
        self.assertEqual(target(inp(4, 1e12)), 10)
        self.assertEqual(target(inp(3, 0, low=2)), 2)
        self.assertEqual(target(inp(1, 2500, params=[("lag_per_worker", "1000")])), 3)

    def test_desired_is_at_least_one(self):
        self.assertIsNone(target(inp(1, 0)))
        self.assertIsNone(target(inp(1, 1, params=[("scale_down_stabilization_secs", "0")])))

    def test_capped_at_partition_count(self):
        out = evaluate(inp(1, 5_000_000, partitions=6, high=24))
        self.assertEqual(out.target, 6)
        self.assertIn("capped at 6 partitions", out.reason)
        self.assertIn(("partitions", 6.0, "partitions"), out.metrics)
        self.assertEqual(target(inp(1, 5_000_000, high=24)), 24)  # 0 = unknown: no cap

    def test_activation_lag(self):
        params = [("activation_lag", "1000"), ("scale_down_stabilization_secs", "0")]
        self.assertEqual(target(inp(5, 999, params=params, low=2)), 2)
        self.assertEqual(target(inp(5, 1000, params=params, low=2)), 2)
        self.assertEqual(target(inp(1, 150_000, params=params)), 2)

    def test_scale_down_waits_for_the_window(self):
        history = [obs(500, 6, 900_000), obs(800, 6, 550_000), obs(900, 6, 100_000)]
        out = evaluate(inp(6, 100_000, history=history))
        self.assertIsNone(out.target)
        self.assertIn("held at 6 by the 300 s scale-down stabilization window", out.reason)
        self.assertIn(("window-max-target", 6.0, "workers"), out.metrics)
        self.assertEqual(target(inp(8, 100_000, history=history)), 6)
        no_window = [("scale_down_stabilization_secs", "0")]
        self.assertEqual(target(inp(6, 100_000, history=history, params=no_window)), 1)
        short = [("scale_down_stabilization_secs", "150")]
        self.assertEqual(target(inp(6, 100_000, history=history, params=short)), 1)
        self.assertEqual(target(inp(1, 350_000, history=history)), 4)  # scale-up not delayed

    def test_stabilization_never_scales_up(self):
        self.assertIsNone(target(inp(3, 100_000, history=[obs(900, 2, 900_000)])))

    def test_holds_during_rescale(self):
        i = inp(1, 1e9)
        i.rescale.in_progress = True
        self.assertIsNone(target(i))

    def test_no_lag_is_insufficient_history(self):
        self.assert_fails("insufficient-history", inp(1, None))
        self.assert_fails("insufficient-history", inp(1, math.nan))

    def test_bad_params_name_the_key(self):
        bad = [
            ("nope", "1"),
            ("lag_per_worker", "0"),
            ("lag_per_worker", "abc"),
            ("lag_per_worker", "0x10"),
            ("lag_per_worker", ""),
            ("lag_per_worker", "1_000"),
            ("activation_lag", "-1"),
            ("activation_lag", "inf"),
            ("scale_down_stabilization_secs", "-5"),
        ]
        for key, value in bad:
            with self.subTest(key=key, value=value):
                self.assert_fails("invalid-params", inp(1, 10, params=[(key, value)]), key)
        i = inp(1, 10, params=[("nope", "1")])
        i.rescale.in_progress = True
        self.assert_fails("invalid-params", i, "nope")
        ok = [
            ("lag_per_worker", " 2.5e4 "),
            ("activation_lag", "0"),
            ("scale_down_stabilization_secs", "0.5"),
        ]
        self.assertEqual(target(inp(1, 50_000, params=ok)), 2)

    def test_explanation_shape(self):
        out = evaluate(inp(1, 350_000))
        self.assertRegex(out.reason, r"^[A-Z][^.]*\.$")
        for name, value, unit in out.metrics:
            self.assertRegex(name, r"^[a-z]+(-[a-z]+)*$")
            self.assertIsInstance(value, float)
            self.assertTrue(unit)
        self.assertIn(("lag", 350_000.0, "records"), out.metrics)
        self.assertIn(("desired", 4.0, "workers"), out.metrics)

    def test_deterministic(self):
        history = [obs(800, 6, 550_000)]
        a = evaluate(inp(8, 100_000, history=history))
        b = evaluate(inp(8, 100_000, history=history))
        self.assertEqual(a, b)


if __name__ == "__main__":
    unittest.main()
