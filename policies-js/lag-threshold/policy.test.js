// Native unit tests of the policy logic: `node --test` (no wasm, no build needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeInfo, evaluate, NAME } from './policy.js';

// One observation in the shape the component bindings hand to `decide` (u64 is a BigInt).
function obs(atS, parallelism, lag, partitions = 0) {
  return {
    atMs: BigInt(atS) * 1000n,
    parallelism,
    inputRecordsPerSec: 1000,
    throughputRecordsPerSec: 1000,
    lagRecords: lag,
    workers: [],
    operators: [
      { operatorId: 'src', upstream: [], parallelism, maxParallelism: partitions, busyRatio: 0.5,
        backpressureRatio: 0, recordsInPerSec: 1000, recordsOutPerSec: 1000 },
      { operatorId: 'work', upstream: ['src'], parallelism, maxParallelism: 128, busyRatio: 0.5,
        backpressureRatio: 0, recordsInPerSec: 1000, recordsOutPerSec: 1000 },
    ],
  };
}

function input(parallelism, lag, { params = [], history = [], partitions = 0, min = 1, max = 10 } = {}) {
  return {
    jobId: 'job',
    nowMs: 1_000_000n,
    current: obs(1000, parallelism, lag, partitions),
    history,
    bounds: { minParallelism: min, maxParallelism: max },
    rescale: { inProgress: false, startedMs: undefined, lastFinishedMs: undefined, count: 0 },
    previous: undefined,
    params,
    state: undefined,
  };
}

const errorTag = (tag, key) => (e) => e.tag === tag && (key === undefined || e.val.includes(key));

test('describe names the policy and documents the three parameters', () => {
  const info = describeInfo();
  assert.equal(info.name, NAME);
  assert.equal(info.version, '0.1.0');
  assert.deepEqual(info.params.map((p) => [p.name, p.defaultValue]), [
    ['lag_per_worker', '100000'],
    ['activation_lag', '0'],
    ['scale_down_stabilization_secs', '300'],
  ]);
  for (const p of info.params) assert.match(p.description, /\(.*(records|seconds).*\)/);
});

test('one worker per lag_per_worker records, within the bounds', () => {
  assert.deepEqual(evaluate(input(1, 350_000)).action, { tag: 'job', val: 4 });
  assert.deepEqual(evaluate(input(4, 350_000)).action, { tag: 'hold' });
  assert.deepEqual(evaluate(input(4, 1e12)).action, { tag: 'job', val: 10 });
  assert.deepEqual(evaluate(input(3, 0, { min: 2 })).action, { tag: 'job', val: 2 });
  const params = [['lag_per_worker', '1000']];
  assert.deepEqual(evaluate(input(1, 2500, { params })).action, { tag: 'job', val: 3 });
});

test('desired is at least one worker', () => {
  assert.deepEqual(evaluate(input(1, 0)).action, { tag: 'hold' });
  assert.deepEqual(evaluate(input(1, 1, { params: [['scale_down_stabilization_secs', '0']] })).action, {
    tag: 'hold',
  });
});

test('capped at the partition count of the source operators', () => {
  const d = evaluate(input(1, 5_000_000, { partitions: 6, max: 24 }));
  assert.deepEqual(d.action, { tag: 'job', val: 6 });
  assert.match(d.explanation.reason, /capped at 6 partitions/);
  assert.ok(d.explanation.metrics.some((m) => m.name === 'partitions' && m.value === 6));
  // Unknown partition count (0): no cap.
  assert.deepEqual(evaluate(input(1, 5_000_000, { max: 24 })).action, { tag: 'job', val: 24 });
});

test('below the activation lag the job goes to the minimum', () => {
  const params = [['activation_lag', '1000'], ['scale_down_stabilization_secs', '0']];
  assert.deepEqual(evaluate(input(5, 999, { params, min: 2 })).action, { tag: 'job', val: 2 });
  assert.deepEqual(evaluate(input(5, 1000, { params, min: 2 })).action, { tag: 'job', val: 2 });
  assert.deepEqual(evaluate(input(1, 150_000, { params })).action, { tag: 'job', val: 2 });
});

test('a scale-down waits for the whole stabilization window', () => {
  // 300 s window; an observation 200 s ago still wanted 6 workers.
  const history = [obs(500, 6, 900_000), obs(800, 6, 550_000), obs(900, 6, 100_000)];
  const d = evaluate(input(6, 100_000, { history }));
  assert.deepEqual(d.action, { tag: 'hold' });
  assert.match(d.explanation.reason, /held at 6 by the 300 s scale-down stabilization window/);
  assert.ok(d.explanation.metrics.some((m) => m.name === 'window-max-target' && m.value === 6));
  // The 500 s observation is outside the window; 800 s wanted 6 -> hold at 6 of 8 workers.
  assert.deepEqual(evaluate(input(8, 100_000, { history })).action, { tag: 'job', val: 6 });
  // Without a window the job goes down at once.
  const params = [['scale_down_stabilization_secs', '0']];
  assert.deepEqual(evaluate(input(6, 100_000, { history, params })).action, { tag: 'job', val: 1 });
  // A window of 150 s sees only the 900 s observation (wants 1).
  const short = [['scale_down_stabilization_secs', '150']];
  assert.deepEqual(evaluate(input(6, 100_000, { history, params: short })).action, { tag: 'job', val: 1 });
  // Scale-ups are never delayed.
  assert.deepEqual(evaluate(input(1, 350_000, { history })).action, { tag: 'job', val: 4 });
});

test('stabilization never scales up beyond the current parallelism', () => {
  const history = [obs(900, 2, 900_000)];
  assert.deepEqual(evaluate(input(3, 100_000, { history })).action, { tag: 'hold' });
});

test('holds while a rescale is in progress', () => {
  const i = input(1, 1e9);
  i.rescale.inProgress = true;
  const d = evaluate(i);
  assert.deepEqual(d.action, { tag: 'hold' });
  assert.equal(d.state, undefined);
});

test('no lag is insufficient history', () => {
  assert.throws(() => evaluate(input(1, undefined)), errorTag('insufficient-history'));
  assert.throws(() => evaluate(input(1, NaN)), errorTag('insufficient-history'));
});

test('bad parameters are invalid-params naming the key', () => {
  const bad = [
    ['nope', '1'],
    ['lag_per_worker', '0'],
    ['lag_per_worker', 'abc'],
    ['lag_per_worker', '0x10'],
    ['lag_per_worker', ''],
    ['activation_lag', '-1'],
    ['activation_lag', 'Infinity'],
    ['scale_down_stabilization_secs', '-5'],
  ];
  for (const [key, value] of bad) {
    assert.throws(() => evaluate(input(1, 10, { params: [[key, value]] })), errorTag('invalid-params', key));
  }
  // Parameters are checked even while a rescale is in progress.
  const i = input(1, 10, { params: [['nope', '1']] });
  i.rescale.inProgress = true;
  assert.throws(() => evaluate(i), errorTag('invalid-params', 'nope'));
  // Valid forms.
  const ok = [['lag_per_worker', ' 2.5e4 '], ['activation_lag', '0'], ['scale_down_stabilization_secs', '0.5']];
  assert.deepEqual(evaluate(input(1, 50_000, { params: ok })).action, { tag: 'job', val: 2 });
});

test('explanation: one sentence and kebab-case metrics with units', () => {
  const d = evaluate(input(1, 350_000));
  assert.match(d.explanation.reason, /^[A-Z][^.]*\.$/);
  for (const m of d.explanation.metrics) {
    assert.match(m.name, /^[a-z]+(-[a-z]+)*$/);
    assert.equal(typeof m.value, 'number');
    assert.ok(m.unit.length > 0);
  }
  const byName = Object.fromEntries(d.explanation.metrics.map((m) => [m.name, m]));
  assert.deepEqual(byName.lag, { name: 'lag', value: 350_000, unit: 'records' });
  assert.deepEqual(byName.desired, { name: 'desired', value: 4, unit: 'workers' });
  assert.equal(d.state, undefined);
});

test('deterministic: the same input gives the same decision', () => {
  const history = [obs(800, 6, 550_000)];
  const a = evaluate(input(8, 100_000, { history }));
  const b = evaluate(input(8, 100_000, { history }));
  assert.deepEqual(a, b);
});
