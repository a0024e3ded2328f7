import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { z } from 'zod';
import {
  API_VERSION,
  BACKUP_POLICY_KIND,
  BACKUP_POLICY_PLURAL,
  BackupPolicySchema,
  GROUP,
  GROUP_SNAPSHOT_GROUP,
  RESTORE_JOB_KIND,
  RESTORE_JOB_PLURAL,
  RestoreJobSchema,
  SNAPSHOT_GROUP,
  SNAPSHOT_VERSION,
  VERSION,
  VOLUME_GROUP_SNAPSHOT_CLASS_PLURAL,
  VOLUME_GROUP_SNAPSHOT_CONTENT_PLURAL,
  VOLUME_GROUP_SNAPSHOT_PLURAL,
  VOLUME_SNAPSHOT_CONTENT_KIND,
  VOLUME_SNAPSHOT_CONTENT_PLURAL,
  VOLUME_SNAPSHOT_PLURAL,
} from '../../../src/api/index.js';
import type { ControlPlane } from '../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  kubectl,
  sharedControlPlane,
} from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import { repoRoot } from '../../support/tools.js';
import {
  ALL_CASES,
  INVALID_CASES,
  backupPolicy,
  restoreJob,
  type Kind,
} from '../../unit/api/cases.js';
import { generatedInputs } from '../../unit/api/generated-inputs.js';
import { describeIssues } from '../../unit/api/issues.js';

const CRD_NAMES = [
  `${BACKUP_POLICY_PLURAL}.${GROUP}`,
  `${RESTORE_JOB_PLURAL}.${GROUP}`,
  `volumesnapshots.${SNAPSHOT_GROUP}`,
  `volumesnapshotcontents.${SNAPSHOT_GROUP}`,
  `volumesnapshotclasses.${SNAPSHOT_GROUP}`,
  `${VOLUME_GROUP_SNAPSHOT_PLURAL}.${GROUP_SNAPSHOT_GROUP}`,
  `${VOLUME_GROUP_SNAPSHOT_CONTENT_PLURAL}.${GROUP_SNAPSHOT_GROUP}`,
  `${VOLUME_GROUP_SNAPSHOT_CLASS_PLURAL}.${GROUP_SNAPSHOT_GROUP}`,
];

const RESOURCES: Record<Kind, { group: string; version: string; plural: string }> = {
  BackupPolicy: { group: GROUP, version: VERSION, plural: BACKUP_POLICY_PLURAL },
  RestoreJob: { group: GROUP, version: VERSION, plural: RESTORE_JOB_PLURAL },
  VolumeSnapshot: {
    group: SNAPSHOT_GROUP,
    version: SNAPSHOT_VERSION,
    plural: VOLUME_SNAPSHOT_PLURAL,
  },
};

const ZOD_SCHEMAS: Partial<Record<Kind, z.ZodType>> = {
  BackupPolicy: BackupPolicySchema,
  RestoreJob: RestoreJobSchema,
};

interface Verdict {
  accepted: boolean;
  message: string;
}

/** The API server's message from a failed request (a Status object in the body). */
function statusMessage(error: unknown): string {
  const { body, message } = error as { body?: unknown; message?: string };
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  return (body as { message?: string } | undefined)?.message ?? message ?? String(error);
}

describe('api: CRDs on a real API server', function () {
  let controlPlane: ControlPlane;
  let kc: k8s.KubeConfig;
  let custom: k8s.CustomObjectsApi;
  let namespace: string;

  /** A create with server-side dry run and strict field validation, as `kubectl apply` does. */
  async function serverVerdict(kind: Kind, manifest: object): Promise<Verdict> {
    try {
      await custom.createNamespacedCustomObject({
        ...RESOURCES[kind],
        namespace,
        body: manifest,
        dryRun: 'All',
        fieldValidation: 'Strict',
      });
      return { accepted: true, message: '' };
    } catch (error) {
      const code = (error as { code?: number }).code;
      if (code !== 422 && code !== 400) throw error;
      return { accepted: false, message: statusMessage(error) };
    }
  }

  before(async function () {
    controlPlane = await sharedControlPlane();
    kc = kubeConfigFor(controlPlane);
    custom = kc.makeApiClient(k8s.CustomObjectsApi);
    await kubectl(controlPlane, ['apply', '-f', path.join(repoRoot, 'crds')]);
    await kubectl(controlPlane, [
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      ...CRD_NAMES.map((name) => `crd/${name}`),
    ]);
    namespace = await createTestNamespace(kc, 'api');
    // Established is reported before every API server handler serves the new resources.
    for (const kind of Object.keys(RESOURCES) as Kind[]) {
      await waitFor(
        () => custom.listNamespacedCustomObject({ ...RESOURCES[kind], namespace }).then(() => true),
        30_000,
        `the API server to serve ${kind}`,
      );
    }
  });

  after(async function () {
    if (kc && namespace) await deleteTestNamespace(kc, namespace);
  });

  it('installs every CRD: Established, names accepted', async function () {
    const extensions = kc.makeApiClient(k8s.ApiextensionsV1Api);
    for (const name of CRD_NAMES) {
      const crd = await extensions.readCustomResourceDefinition({ name });
      const status = Object.fromEntries(
        (crd.status?.conditions ?? []).map((condition) => [condition.type, condition.status]),
      );
      expect(status, name).to.include({ Established: 'True', NamesAccepted: 'True' });
      expect(status, name).to.not.have.property('NonStructuralSchema');
    }
  });

  it('installs idempotently (a second apply changes nothing)', async function () {
    const out = await kubectl(controlPlane, ['apply', '-f', path.join(repoRoot, 'crds')]);
    expect(out.trim().split('\n')).to.have.length(CRD_NAMES.length);
    expect(out).to.not.match(/configured|created/);
  });

  it('accepts every file in examples/ with kubectl apply --dry-run=server', async function () {
    const files = readdirSync(path.join(repoRoot, 'examples')).sort();
    expect(files.length).to.be.at.least(9);
    for (const file of files) {
      const out = await kubectl(controlPlane, [
        'apply',
        '--dry-run=server',
        '-n',
        namespace,
        '-f',
        path.join(repoRoot, 'examples', file),
      ]);
      expect(out, file).to.match(/\(server dry run\)/);
    }
  });

  describe(`rejects ${INVALID_CASES.length} invalid manifests, naming the offending field`, function () {
    it('has at least 30 of them', function () {
      expect(INVALID_CASES.length).to.be.at.least(30);
    });
    for (const testCase of INVALID_CASES) {
      it(`${testCase.kind}: ${testCase.name}`, async function () {
        const verdict = await serverVerdict(testCase.kind, testCase.manifest);
        expect(verdict.accepted, 'accepted by the API server').to.equal(false);
        expect(verdict.message).to.include(testCase.names);
      });
    }
  });

  it('zod and the API server reach the same verdict on every input of the table', async function () {
    const disagreements: string[] = [];
    let compared = 0;
    for (const testCase of ALL_CASES) {
      const schema = ZOD_SCHEMAS[testCase.kind];
      if (!schema) continue;
      const parsed = schema.safeParse(testCase.manifest);
      const server = await serverVerdict(testCase.kind, testCase.manifest);
      compared++;
      if (parsed.success !== server.accepted || parsed.success !== testCase.valid) {
        disagreements.push(
          `${testCase.name}: table ${testCase.valid}, zod ${parsed.success}` +
            `${parsed.error ? ` (${describeIssues(parsed.error)})` : ''}, API server ${server.accepted}` +
            `${server.message ? ` (${server.message})` : ''}`,
        );
      }
    }
    expect(compared).to.be.at.least(50);
    expect(disagreements).to.deep.equal([]);
  });

  it('zod and the API server agree on 200 generated inputs near the format boundaries', async function () {
    const seed = 20250601;
    const disagreements: string[] = [];
    const verdicts = { accepted: 0, rejected: 0 };
    for (const input of generatedInputs(seed, 200)) {
      const kind = (input.manifest as { kind: Kind }).kind;
      const parsed = ZOD_SCHEMAS[kind]!.safeParse(input.manifest);
      const server = await serverVerdict(kind, input.manifest);
      verdicts[server.accepted ? 'accepted' : 'rejected']++;
      if (parsed.success !== server.accepted) {
        disagreements.push(
          `${input.description}: zod ${parsed.success}, API server ${server.accepted} ${server.message}`,
        );
      }
    }
    expect(disagreements, `seed ${seed}`).to.deep.equal([]);
    // Both verdicts must be well represented, or the inputs test nothing.
    expect(verdicts.accepted, JSON.stringify(verdicts)).to.be.at.least(20);
    expect(verdicts.rejected, JSON.stringify(verdicts)).to.be.at.least(20);
  });

  it('checks volumeSnapshotRef of a VolumeSnapshotContent through the escaped __namespace__', async function () {
    const content = (ref: Record<string, string>) => ({
      apiVersion: `${SNAPSHOT_GROUP}/${SNAPSHOT_VERSION}`,
      kind: VOLUME_SNAPSHOT_CONTENT_KIND,
      metadata: { name: `snapcontent-api-${process.pid}` },
      spec: {
        deletionPolicy: 'Retain',
        driver: 'local.snapback.dev',
        source: { snapshotHandle: 'snap-1' },
        volumeSnapshotRef: ref,
      },
    });
    const verdict = async (body: object): Promise<Verdict> => {
      try {
        await custom.createClusterCustomObject({
          group: SNAPSHOT_GROUP,
          version: SNAPSHOT_VERSION,
          plural: VOLUME_SNAPSHOT_CONTENT_PLURAL,
          body,
          dryRun: 'All',
          fieldValidation: 'Strict',
        });
        return { accepted: true, message: '' };
      } catch (error) {
        if ((error as { code?: number }).code !== 422) throw error;
        return { accepted: false, message: statusMessage(error) };
      }
    };
    expect(await verdict(content({ name: 'snap', namespace }))).to.deep.equal({
      accepted: true,
      message: '',
    });
    const withoutNamespace = await verdict(content({ name: 'snap' }));
    expect(withoutNamespace.accepted).to.equal(false);
    expect(withoutNamespace.message).to.contain(
      'both spec.volumeSnapshotRef.name and spec.volumeSnapshotRef.namespace must be set',
    );
  });

  it('applies the schema defaults on the server', async function () {
    const out = await kubectl(
      controlPlane,
      ['create', '--dry-run=server', '-n', namespace, '-o', 'json', '-f', '-'],
      JSON.stringify(
        backupPolicy({
          pvcNames: ['data'],
          schedule: '@daily',
          snapshotClass: { template: { driver: 'local.snapback.dev' } },
          retention: { keepLast: 2 },
        }),
      ),
    );
    const spec = (JSON.parse(out) as { spec: Record<string, unknown> }).spec;
    expect(spec).to.deep.include({ timeZone: 'UTC', suspend: false });
    expect(spec.retention).to.deep.equal({ keepLast: 2, minReady: 1 });
    expect(spec.snapshotClass).to.deep.equal({
      template: { driver: 'local.snapback.dev', deletionPolicy: 'Delete', forceDelete: false },
    });
  });

  it('rejects an update of a RestoreJob spec and accepts one of a BackupPolicy schedule', async function () {
    const job = restoreJob({
      source: { volumeSnapshotName: 'snap' },
      target: { pvcName: 'restored' },
    }) as { metadata: { name: string } };
    await custom.createNamespacedCustomObject({ ...RESOURCES.RestoreJob, namespace, body: job });
    const jobName = job.metadata.name;
    const specPatch = JSON.stringify({ spec: { target: { pvcName: 'elsewhere' } } });
    const rejected = await kubectl(controlPlane, [
      'patch',
      'rj',
      jobName,
      '-n',
      namespace,
      '--type=merge',
      '-p',
      specPatch,
    ]).then(
      () => '',
      (error: Error) => error.message,
    );
    expect(rejected).to.include('spec is immutable');
    // Metadata stays editable.
    await kubectl(controlPlane, ['label', 'rj', jobName, '-n', namespace, 'team=storage']);

    const policy = backupPolicy({
      pvcNames: ['data'],
      schedule: '0 2 * * *',
      retention: { keepLast: 3 },
    }) as { metadata: { name: string } };
    await custom.createNamespacedCustomObject({
      ...RESOURCES.BackupPolicy,
      namespace,
      body: policy,
    });
    await kubectl(controlPlane, [
      'patch',
      'bp',
      policy.metadata.name,
      '-n',
      namespace,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { schedule: '30 3 * * 0' } }),
    ]);
    const schedule = await kubectl(controlPlane, [
      'get',
      'bp',
      policy.metadata.name,
      '-n',
      namespace,
      '-o',
      'jsonpath={.spec.schedule}',
    ]);
    expect(schedule).to.equal('30 3 * * 0');
  });

  it('shows the printer columns in kubectl get bp and kubectl get rj', async function () {
    const policyName = 'columns-policy';
    await kubectl(
      controlPlane,
      ['create', '-n', namespace, '-f', '-'],
      JSON.stringify({
        apiVersion: API_VERSION,
        kind: BACKUP_POLICY_KIND,
        metadata: { name: policyName },
        spec: { pvcNames: ['data'], schedule: '0 2 * * *', retention: { keepLast: 3 } },
      }),
    );
    const lastSchedule = new Date(Date.now() - 3 * 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await kubectl(controlPlane, [
      'patch',
      'bp',
      policyName,
      '-n',
      namespace,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          lastScheduleTime: lastSchedule,
          nextScheduleTime: '2099-01-01T02:00:00Z',
          readySnapshots: 3,
          totalSnapshots: 4,
          readyOverTotal: '3/4',
        },
      }),
    ]);
    const bpTable = (await kubectl(controlPlane, ['get', 'bp', policyName, '-n', namespace]))
      .trim()
      .split('\n');
    expect(bpTable[0]!.split(/\s{2,}/)).to.deep.equal([
      'NAME',
      'SCHEDULE',
      'SUSPENDED',
      'LAST',
      'NEXT',
      'READY/TOTAL',
      'GROUPS',
      'AGE',
    ]);
    const bpRow = bpTable[1]!.split(/\s{2,}/);
    expect(bpRow.slice(0, 6)).to.deep.equal([
      policyName,
      '0 2 * * *',
      'false',
      '3h',
      '2099-01-01T02:00:00Z',
      '3/4',
    ]);

    // consistency Group: ready groups, and (wide) the consistency and the newest group's members
    const groupPolicy = 'columns-group';
    await kubectl(
      controlPlane,
      ['create', '-n', namespace, '-f', '-'],
      JSON.stringify({
        apiVersion: API_VERSION,
        kind: BACKUP_POLICY_KIND,
        metadata: { name: groupPolicy },
        spec: {
          selector: { matchLabels: { app: 'db' } },
          schedule: '@daily',
          consistency: 'Group',
        },
      }),
    );
    await kubectl(controlPlane, [
      'patch',
      'bp',
      groupPolicy,
      '-n',
      namespace,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          readyGroups: 2,
          totalGroups: 2,
          readyOverTotalGroups: '2/2',
          lastGroup: {
            name: 'columns-group-1',
            runTime: lastSchedule,
            readyToUse: true,
            members: 3,
            readyMembers: 3,
            readyOverTotal: '3/3',
          },
        },
      }),
    ]);
    const wide = (
      await kubectl(controlPlane, ['get', 'bp', groupPolicy, '-n', namespace, '-o', 'wide'])
    )
      .trim()
      .split('\n');
    // Cells are cut at the header's column starts: empty cells (no LAST yet) leave no text.
    const header = wide[0]!;
    const names = header.split(/\s{2,}/);
    const cell = (name: string) => {
      const start = header.indexOf(name);
      const next = names[names.indexOf(name) + 1];
      return wide[1]!.slice(start, next ? header.indexOf(next) : undefined).trim();
    };
    expect(names).to.include.members(['CONSISTENCY', 'GROUPS', 'MEMBERS']);
    expect([cell('CONSISTENCY'), cell('GROUPS'), cell('MEMBERS')]).to.deep.equal([
      'Group',
      '2/2',
      '3/3',
    ]);

    const jobName = 'columns-job';
    await kubectl(
      controlPlane,
      ['create', '-n', namespace, '-f', '-'],
      JSON.stringify({
        apiVersion: API_VERSION,
        kind: RESTORE_JOB_KIND,
        metadata: { name: jobName },
        spec: {
          source: { backupPolicy: { name: policyName, pvcName: 'data' } },
          target: { pvcName: 'data-restored' },
        },
      }),
    );
    await kubectl(controlPlane, [
      'patch',
      'rj',
      jobName,
      '-n',
      namespace,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          source: 'policy/columns-policy pvc/data at latest',
          target: 'data-restored',
          phase: 'Restoring',
        },
      }),
    ]);
    const rjTable = (await kubectl(controlPlane, ['get', 'rj', jobName, '-n', namespace]))
      .trim()
      .split('\n');
    expect(rjTable[0]!.split(/\s{2,}/)).to.deep.equal([
      'NAME',
      'SOURCE',
      'TARGET',
      'PHASE',
      'STEP',
      'AGE',
    ]);
    expect(rjTable[1]!.split(/\s{2,}/).slice(0, 4)).to.deep.equal([
      jobName,
      'policy/columns-policy pvc/data at latest',
      'data-restored',
      'Restoring',
    ]);

    const category = await kubectl(controlPlane, [
      'get',
      'snapback',
      '-n',
      namespace,
      '-o',
      'name',
    ]);
    expect(category).to.include(`backuppolicy.${GROUP}/${policyName}`);
    expect(category).to.include(`restorejob.${GROUP}/${jobName}`);
  });

  it('kubectl explain backuppolicy.spec.retention prints our descriptions', async function () {
    // The OpenAPI document is republished shortly after a CRD changes; wait for ours.
    const out = await waitFor(
      async () => {
        const text = await kubectl(controlPlane, ['explain', 'backuppolicy.spec.retention']);
        return text.includes('Which snapshots of each PVC to keep') ? text : undefined;
      },
      60_000,
      'kubectl explain to show the BackupPolicy retention description',
      () => kubectl(controlPlane, ['explain', 'backuppolicy.spec.retention']).catch(String),
    );
    const flat = out.replace(/\s+/g, ' ');
    expect(flat).to.include('The newest minReady ready snapshots of each PVC are always kept.');
    expect(flat).to.include('Keep the newest N ready snapshots of each PVC.');
    for (const field of [
      'keepLast',
      'maxAge',
      'hourly',
      'daily',
      'weekly',
      'monthly',
      'yearly',
      'minReady',
    ]) {
      expect(out).to.match(new RegExp(`^\\s+${field}\\s`, 'm'));
    }
  });
});
