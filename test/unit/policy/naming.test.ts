import { expect } from 'chai';
import type { RunIdentity } from '../../../src/policy/naming.js';
import {
  MAX_NAME_LENGTH,
  groupSnapshotName,
  isDnsLabel,
  labelValue,
  ownedSnapshotClassName,
  runStamp,
  snapshotName,
} from '../../../src/policy/naming.js';

const scheduled = (t: string): RunIdentity => ({ kind: 'scheduled', scheduledTime: new Date(t) });
const runNow = (token: string, sequence = 1): RunIdentity => ({ kind: 'run-now', token, sequence });

describe('naming', function () {
  it('builds a readable name from PVC, policy and the scheduled time in UTC, plus a hash', function () {
    const name = snapshotName('nightly', 'data-web-0', scheduled('2026-03-29T01:00:00Z'));
    expect(name).to.match(/^data-web-0-nightly-202603290100-[0-9a-f]{8}$/);
    expect(runStamp(new Date('2026-12-31T23:59:59Z'))).to.equal('202612312359');
  });

  it('names run-now runs after their token', function () {
    expect(snapshotName('nightly', 'data', runNow('Before-Upgrade_1'))).to.match(
      /^data-nightly-now-before-upgrade-1-[0-9a-f]{8}$/,
    );
  });

  it('gives a retried run the identical name', function () {
    const a = snapshotName('p', 'data', scheduled('2026-01-01T10:00:00Z'));
    const b = snapshotName('p', 'data', scheduled('2026-01-01T10:00:00.000Z'));
    expect(a).to.equal(b);
    expect(snapshotName('p', 'data', runNow('x'))).to.equal(snapshotName('p', 'data', runNow('x')));
  });

  it('gives distinct runs, PVCs and policies distinct names', function () {
    const names = [
      snapshotName('p', 'data', scheduled('2026-01-01T10:00:00Z')),
      snapshotName('p', 'data', scheduled('2026-01-01T10:01:00Z')),
      snapshotName('p', 'data', runNow('1')),
      snapshotName('p', 'data', runNow('2')),
      // A token used again later is another run.
      snapshotName('p', 'data', runNow('1', 3)),
      // Tokens that sanitize alike stay apart.
      snapshotName('p', 'data', runNow('A')),
      snapshotName('p', 'data', runNow('a')),
      snapshotName('p', 'data', runNow('a_b')),
      snapshotName('p', 'data', runNow('a.b')),
      // Concatenations that read alike stay apart.
      snapshotName('c', 'a-b', scheduled('2026-01-01T10:00:00Z')),
      snapshotName('b-c', 'a', scheduled('2026-01-01T10:00:00Z')),
      snapshotName('q', 'data', scheduled('2026-01-01T10:00:00Z')),
      snapshotName('p', 'logs', scheduled('2026-01-01T10:00:00Z')),
    ];
    expect(new Set(names).size).to.equal(names.length);
  });

  it('keeps every name a valid DNS-1123 label of at most 63 characters', function () {
    const long = 'x'.repeat(200);
    const cases: Array<[string, string, RunIdentity]> = [
      ['nightly', long, scheduled('2026-01-01T00:00:00Z')],
      [long, 'data', scheduled('2026-01-01T00:00:00Z')],
      [long, long, runNow(long)],
      ['p.with.dots', 'pvc.with.dots', runNow('UPPER case token!')],
      ['p', 'd', runNow('---')],
      ['p', 'd', runNow('')],
    ];
    for (const [policy, pvc, run] of cases) {
      const name = snapshotName(policy, pvc, run);
      expect(isDnsLabel(name), name).to.equal(true);
      expect(name.length).to.be.at.most(MAX_NAME_LENGTH);
    }
  });

  it('shortens long names but keeps both PVC and policy recognisable', function () {
    const name = snapshotName(
      'a-very-long-policy-name-for-production-databases',
      'data-postgres-cluster-primary-0',
      scheduled('2026-01-01T00:00:00Z'),
    );
    expect(name.length).to.equal(MAX_NAME_LENGTH);
    expect(name).to.match(/^data-postgres-.*-a-very-long-.*-202601010000-[0-9a-f]{8}$/);
    const other = snapshotName(
      'a-very-long-policy-name-for-production-databases-2',
      'data-postgres-cluster-primary-0',
      scheduled('2026-01-01T00:00:00Z'),
    );
    expect(other).not.to.equal(name);
  });

  it('uses a name as label value when valid, and a hashed short form otherwise', function () {
    expect(labelValue('data-web-0')).to.equal('data-web-0');
    expect(labelValue('pvc.with.dots')).to.equal('pvc.with.dots');
    const long = `data-${'y'.repeat(100)}`;
    const v = labelValue(long);
    expect(v.length).to.be.at.most(63);
    expect(v).to.match(/^data-y+-[0-9a-f]{8}$/);
    expect(labelValue(`${long}z`)).not.to.equal(v);
  });

  it('names the owned VolumeSnapshotClass per namespace and policy', function () {
    const a = ownedSnapshotClassName('team-a', 'nightly');
    expect(a).to.match(/^snapback-team-a-nightly-[0-9a-f]{8}$/);
    expect(ownedSnapshotClassName('team-b', 'nightly')).not.to.equal(a);
    expect(ownedSnapshotClassName('team', 'a-nightly')).not.to.equal(a);
    expect(isDnsLabel(ownedSnapshotClassName('n'.repeat(63), 'p'.repeat(253)))).to.equal(true);
  });

  it('names a group after the policy and the run: retries alike, runs apart, a valid DNS label', function () {
    expect(groupSnapshotName('db-group', scheduled('2026-03-29T01:00:00Z'))).to.match(
      /^db-group-202603290100-[0-9a-f]{8}$/,
    );
    expect(groupSnapshotName('db-group', runNow('Nightly_1'))).to.match(
      /^db-group-now-nightly-1-[0-9a-f]{8}$/,
    );
    expect(groupSnapshotName('p', scheduled('2026-01-01T10:00:00Z'))).to.equal(
      groupSnapshotName('p', scheduled('2026-01-01T10:00:00.000Z')),
    );
    const names = [
      groupSnapshotName('p', scheduled('2026-01-01T10:00:00Z')),
      groupSnapshotName('p', scheduled('2026-01-01T10:01:00Z')),
      groupSnapshotName('p', runNow('a', 1)),
      groupSnapshotName('p', runNow('a', 2)),
      groupSnapshotName('q', runNow('a', 1)),
      // a group's name never equals the snapshot name a PVC of the same run would get
      snapshotName('p', 'p', runNow('a', 1)),
    ];
    expect(new Set(names).size).to.equal(names.length);
    const long = groupSnapshotName('p'.repeat(80), runNow('t'.repeat(200)));
    expect(long.length).to.be.at.most(MAX_NAME_LENGTH);
    expect(isDnsLabel(long)).to.equal(true);
  });
});
