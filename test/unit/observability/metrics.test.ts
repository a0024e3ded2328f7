import { expect } from 'chai';
import {
  createMetrics,
  forgetPolicy,
  recordPolicySuccess,
  timeReconcile,
  type SnapbackMetrics,
} from '../../../src/observability/metrics.js';

/** The value of one series in the text exposition, or undefined when the series is absent. */
async function sample(metrics: SnapbackMetrics, series: string): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('observability/metrics', function () {
  it('exposes every snapback metric with its type, even before the first observation', async function () {
    const metrics = createMetrics({ processMetrics: false });
    const text = await metrics.registry.metrics();
    const types = Object.fromEntries(
      [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]),
    );
    expect(types).to.deep.equal({
      snapback_snapshots_created_total: 'counter',
      snapback_snapshots_failed_total: 'counter',
      snapback_snapshots_pruned_total: 'counter',
      snapback_restores_total: 'counter',
      snapback_csi_operation_duration_seconds: 'histogram',
      snapback_reconcile_duration_seconds: 'histogram',
      snapback_ecs_api_requests_total: 'counter',
      snapback_workqueue_depth: 'gauge',
      snapback_policy_last_success_timestamp_seconds: 'gauge',
      snapback_verifications_total: 'counter',
      snapback_policy_last_verification_success_timestamp_seconds: 'gauge',
    });
  });

  it('adds the Node.js process metrics by default', async function () {
    const metrics = createMetrics();
    const text = await metrics.registry.metrics();
    expect(text).to.match(/^process_resident_memory_bytes \d+/m);
    expect(text).to.match(/^nodejs_eventloop_lag_seconds /m);
  });

  it('keeps two registries independent, so one test cannot see another test’s counts', async function () {
    const a = createMetrics({ processMetrics: false });
    const b = createMetrics({ processMetrics: false });
    a.snapshotsCreated.inc({ namespace: 'shop', policy: 'nightly' }, 3);
    expect(
      await sample(a, 'snapback_snapshots_created_total{namespace="shop",policy="nightly"}'),
    ).to.equal(3);
    expect(
      await sample(b, 'snapback_snapshots_created_total{namespace="shop",policy="nightly"}'),
    ).to.equal(undefined);
  });

  it('counts ECS calls by API and outcome, throttles apart from other errors', async function () {
    const metrics = createMetrics({ processMetrics: false });
    metrics.ecsApiRequests.inc({ api: 'CreateSnapshot', outcome: 'success' });
    metrics.ecsApiRequests.inc({ api: 'CreateSnapshot', outcome: 'throttled' });
    metrics.ecsApiRequests.inc({ api: 'CreateSnapshot', outcome: 'throttled' });
    metrics.ecsApiRequests.inc({ api: 'DescribeDisks', outcome: 'error' });
    const series = (api: string, outcome: string) =>
      sample(metrics, `snapback_ecs_api_requests_total{api="${api}",outcome="${outcome}"}`);
    expect(await series('CreateSnapshot', 'success')).to.equal(1);
    expect(await series('CreateSnapshot', 'throttled')).to.equal(2);
    expect(await series('DescribeDisks', 'error')).to.equal(1);
  });

  it('records reconcile durations with the result the reconcile reached', async function () {
    const metrics = createMetrics({ processMetrics: false });
    expect(await timeReconcile(metrics, 'backuppolicy', async () => 'done')).to.equal('done');
    await timeReconcile(
      metrics,
      'backuppolicy',
      async () => ({ requeueAfter: 30 }),
      () => 'requeue',
    );
    const failure = new Error('apiserver unreachable');
    let thrown: unknown;
    try {
      await timeReconcile(metrics, 'restorejob', async () => {
        throw failure;
      });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).to.equal(failure);
    const count = (controller: string, result: string) =>
      sample(
        metrics,
        `snapback_reconcile_duration_seconds_count{controller="${controller}",result="${result}"}`,
      );
    expect(await count('backuppolicy', 'success')).to.equal(1);
    expect(await count('backuppolicy', 'requeue')).to.equal(1);
    expect(await count('restorejob', 'error')).to.equal(1);
  });

  it('observes CSI durations into buckets that reach cloud snapshot times', async function () {
    const metrics = createMetrics({ processMetrics: false });
    const labels = { driver: 'local.snapback.dev', method: 'CreateSnapshot', code: 'OK' };
    metrics.csiOperationDuration.observe(labels, 0.02);
    metrics.csiOperationDuration.observe(labels, 95);
    const bucket = (le: string) =>
      sample(
        metrics,
        `snapback_csi_operation_duration_seconds_bucket{le="${le}",driver="local.snapback.dev",method="CreateSnapshot",code="OK"}`,
      );
    expect(await bucket('0.025')).to.equal(1);
    expect(await bucket('60')).to.equal(1);
    expect(await bucket('120')).to.equal(2);
  });

  it('tracks work queue depth per controller', async function () {
    const metrics = createMetrics({ processMetrics: false });
    metrics.workQueueDepth.set({ controller: 'volumesnapshot' }, 4);
    metrics.workQueueDepth.dec({ controller: 'volumesnapshot' });
    expect(await sample(metrics, 'snapback_workqueue_depth{controller="volumesnapshot"}')).to.equal(
      3,
    );
  });

  it('sets the last-success gauge in Unix seconds and forgets a deleted policy', async function () {
    const metrics = createMetrics({ processMetrics: false });
    const nightly = { namespace: 'shop', policy: 'nightly' };
    const hourly = { namespace: 'shop', policy: 'hourly' };
    recordPolicySuccess(metrics, nightly, new Date('2025-03-01T02:00:00Z'));
    recordPolicySuccess(metrics, hourly, new Date('2025-03-01T02:30:00Z'));
    metrics.snapshotsCreated.inc(nightly);
    metrics.snapshotsPruned.inc(nightly);
    metrics.snapshotsFailed.inc(nightly);
    const gauge = 'snapback_policy_last_success_timestamp_seconds';
    expect(await sample(metrics, `${gauge}{namespace="shop",policy="nightly"}`)).to.equal(
      Date.parse('2025-03-01T02:00:00Z') / 1000,
    );

    forgetPolicy(metrics, nightly);

    const text = await metrics.registry.metrics();
    expect(text).not.to.contain('policy="nightly"');
    expect(await sample(metrics, `${gauge}{namespace="shop",policy="hourly"}`)).to.equal(
      Date.parse('2025-03-01T02:30:00Z') / 1000,
    );
  });
});
