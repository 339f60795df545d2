"""The component: adapts ``policy_logic`` to the WIT bindings componentize-py generates.

componentize-py looks for a class named after each exported interface (``policy`` ->
``Policy``) in this module. The ``wit_world`` package is generated on the fly at build time.
"""

import componentize_py_types
import wit_world.exports
from wit_world.imports import types

import policy_logic

_ERRORS = {
    "insufficient-history": types.PolicyError_InsufficientHistory,
    "invalid-params": types.PolicyError_InvalidParams,
    "invalid-state": types.PolicyError_InvalidState,
    "internal": types.PolicyError_Internal,
}


class Policy(wit_world.exports.Policy):
    def describe(self) -> types.PolicyInfo:
        return types.PolicyInfo(
            name=policy_logic.NAME,
            version=policy_logic.VERSION,
            description=policy_logic.DESCRIPTION,
            params=[
                types.ParamSpec(p.name, p.default_value, p.description) for p in policy_logic.PARAMS
            ],
        )

    def decide(self, input: types.DecisionInput) -> types.Decision:
        try:
            out = policy_logic.evaluate(input)
        except policy_logic.PolicyFailure as failure:
            raise componentize_py_types.Err(_ERRORS[failure.kind](failure.message))
        action = types.Action_Hold() if out.target is None else types.Action_Job(out.target)
        metrics = [types.Metric(name, float(value), unit) for name, value, unit in out.metrics]
        return types.Decision(action, types.Explanation(out.reason, metrics), None)
