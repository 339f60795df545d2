// lag-threshold-js: a KEDA-Kafka-scaler-like scaling policy for the Daedalus autoscaler.
//
// One worker per `lag_per_worker` records of consumer lag, capped at the source's partition
// count, clamped to the host's bounds, with an HPA/KEDA-style scale-down stabilization window.
//
// This file is the whole component (componentize-js exports `policy` as the WIT interface
// `daedalus:autoscaler/policy`) and also a plain ES module: `evaluate(input)` and
// `describeInfo()` take and return the same plain objects the component bindings use, so the
// logic is unit-tested natively with `node --test`.
//
// Shapes (jco / componentize-js conventions): record fields are camelCase; `u64` is a BigInt;
// `option<T>` is the value or `undefined`; a variant is `{ tag: 'kebab-name', val }`; a
// `tuple<string, string>` is a two-element array; returning means `ok`, throwing a
// `{ tag, val }` policy-error means `err`.
//
// Deterministic: no clocks, no randomness, no I/O. Time is `input.nowMs`.

export const NAME = 'lag-threshold-js';
export const VERSION = '0.1.0';

const PARAMS = [
  {
    name: 'lag_per_worker',
    defaultValue: '100000',
    description: 'records of consumer lag one worker should own (records per worker, >= 1)',
    min: 1,
  },
  {
    name: 'activation_lag',
    defaultValue: '0',
    description: 'below this consumer lag the job scales to its minimum parallelism (records, >= 0)',
    min: 0,
  },
  {
    name: 'scale_down_stabilization_secs',
    defaultValue: '300',
    description:
      'a scale-down needs every observation of this window to allow it; the max desired over the window is used (seconds, >= 0)',
    min: 0,
  },
];

// A plain decimal or scientific number; no hex, no `Infinity`, no empty string.
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** A policy-error variant value, thrown to return `err`. */
function policyError(tag, message) {
  return { tag, val: message };
}

/** The static description of the policy (the WIT `policy-info`). */
export function describeInfo() {
  return {
    name: NAME,
    version: VERSION,
    description:
      'KEDA-Kafka-style lag rule: ceil(lag / lag_per_worker) workers, capped at the partition count, with scale-down stabilization.',
    params: PARAMS.map(({ name, defaultValue, description }) => ({ name, defaultValue, description })),
  };
}

/** Parses `input.params`; throws `invalid-params` naming the key on any problem. */
export function parseParams(params) {
  const values = {};
  for (const spec of PARAMS) values[spec.name] = Number(spec.defaultValue);
  for (const [key, raw] of params ?? []) {
    const spec = PARAMS.find((p) => p.name === key);
    if (!spec) {
      throw policyError(
        'invalid-params',
        `unknown parameter \`${key}\`; known: ${PARAMS.map((p) => p.name).join(', ')}`,
      );
    }
    const text = String(raw).trim();
    const value = NUMBER.test(text) ? Number(text) : NaN;
    if (!Number.isFinite(value) || value < spec.min) {
      throw policyError('invalid-params', `${key} = \`${raw}\`: expected a number >= ${spec.min}`);
    }
    values[key] = value;
  }
  return {
    lagPerWorker: values.lag_per_worker,
    activationLag: values.activation_lag,
    stabilizationMs: values.scale_down_stabilization_secs * 1000,
  };
}

/** A usable lag reading of an observation, or `undefined`. */
function lagOf(observation) {
  const lag = observation?.lagRecords;
  return typeof lag === 'number' && Number.isFinite(lag) && lag >= 0 ? lag : undefined;
}

/** Partition count of the input: max `maxParallelism` of the source operators, or undefined. */
export function partitionCount(observation) {
  let partitions = 0;
  for (const op of observation?.operators ?? []) {
    if ((op.upstream ?? []).length === 0 && op.maxParallelism > 0) {
      partitions = Math.max(partitions, op.maxParallelism);
    }
  }
  return partitions > 0 ? partitions : undefined;
}

/** The target one observation asks for, within the bounds, with how it got there. */
function targetFor(observation, lag, params, bounds) {
  const min = bounds.minParallelism;
  const max = Math.max(bounds.maxParallelism, min);
  const activated = lag >= params.activationLag;
  const desired = activated ? Math.max(1, Math.ceil(lag / params.lagPerWorker)) : min;
  const partitions = partitionCount(observation);
  const capped = partitions !== undefined ? Math.min(desired, partitions) : desired;
  const target = Math.min(Math.max(capped, min), max);
  return { activated, desired, partitions, capped, target, min, max };
}

/**
 * The decision for one input (the WIT `decision-input`, as plain objects). Returns a
 * `decision`; throws a `policy-error` (`{ tag, val }`).
 */
export function evaluate(input) {
  const params = parseParams(input.params);
  if (input.rescale?.inProgress) {
    return {
      action: { tag: 'hold' },
      explanation: { reason: 'A rescale is in progress, so the policy holds the current parallelism.', metrics: [] },
      state: undefined,
    };
  }
  const lag = lagOf(input.current);
  if (lag === undefined) {
    throw policyError('insufficient-history', 'the current observation has no consumer lag (lag-records)');
  }
  const current = input.current.parallelism;
  const t = targetFor(input.current, lag, params, input.bounds);
  let target = t.target;

  // Scale-down stabilization (HPA/KEDA): the max target over the window, never above current.
  let windowMax;
  if (target < current && params.stabilizationMs > 0) {
    const since = Number(input.nowMs) - params.stabilizationMs;
    windowMax = target;
    for (const obs of input.history ?? []) {
      const obsLag = lagOf(obs);
      if (Number(obs.atMs) > since && obsLag !== undefined) {
        windowMax = Math.max(windowMax, targetFor(obs, obsLag, params, input.bounds).target);
      }
    }
    target = Math.min(current, windowMax);
  }

  const metrics = [
    { name: 'lag', value: lag, unit: 'records' },
    { name: 'lag-per-worker', value: params.lagPerWorker, unit: 'records' },
    { name: 'desired', value: t.desired, unit: 'workers' },
  ];
  if (t.partitions !== undefined) metrics.push({ name: 'partitions', value: t.partitions, unit: 'partitions' });
  if (windowMax !== undefined) metrics.push({ name: 'window-max-target', value: windowMax, unit: 'workers' });
  metrics.push({ name: 'target', value: target, unit: 'workers' });

  const why = t.activated
    ? `lag ${fmt(lag)} records at ${fmt(params.lagPerWorker)} per worker wants ${t.desired} worker${t.desired === 1 ? '' : 's'}`
    : `lag ${fmt(lag)} records is below the activation lag of ${fmt(params.activationLag)}, so the minimum of ${t.min} applies`;
  const steps = [];
  if (t.capped < t.desired) steps.push(`capped at ${t.partitions} partitions`);
  if (t.target !== t.capped) steps.push(`clamped to the bounds ${t.min}..${t.max}`);
  if (target !== t.target) {
    steps.push(`held at ${target} by the ${fmt(params.stabilizationMs / 1000)} s scale-down stabilization window`);
  }
  const outcome = target === current ? `holding at ${current}` : `scaling from ${current} to ${target}`;
  const reason = `${capitalize(why)}${steps.length ? ', ' + steps.join(', ') : ''}: ${outcome}.`;

  return {
    action: target === current ? { tag: 'hold' } : { tag: 'job', val: target },
    explanation: { reason, metrics },
    state: undefined,
  };
}

function fmt(x) {
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}

function capitalize(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The WIT export `daedalus:autoscaler/policy`. */
export const policy = {
  describe: describeInfo,
  decide: evaluate,
};
