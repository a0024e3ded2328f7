import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import {
  BACKUP_POLICY_KIND,
  BackupPolicySchema,
  BackupPolicySpecSchema,
  RESTORE_JOB_KIND,
  RestoreJobSchema,
  RestoreJobSpecSchema,
  isPositiveQuantity,
  restoreSourceSummary,
} from '../../../src/api/index.js';
import { repoRoot } from '../../support/tools.js';
import { INVALID_CASES, VALID_CASES, type ManifestCase } from './cases.js';
import { describeIssues } from './issues.js';

function zodSchemaFor(kind: string): z.ZodType | undefined {
  if (kind === BACKUP_POLICY_KIND) return BackupPolicySchema;
  if (kind === RESTORE_JOB_KIND) return RestoreJobSchema;
  return undefined;
}

const zodCases = (cases: ManifestCase[]) => cases.filter((c) => zodSchemaFor(c.kind));

describe('api: zod schemas of BackupPolicy and RestoreJob', function () {
  describe('accept every valid manifest of the shared table', function () {
    for (const testCase of zodCases(VALID_CASES)) {
      it(testCase.name, function () {
        const result = zodSchemaFor(testCase.kind)!.safeParse(testCase.manifest);
        expect(result.success, result.error && describeIssues(result.error)).to.equal(true);
      });
    }
  });

  describe('reject every invalid manifest of the shared table, naming the field', function () {
    for (const testCase of zodCases(INVALID_CASES)) {
      it(testCase.name, function () {
        const result = zodSchemaFor(testCase.kind)!.safeParse(testCase.manifest);
        expect(result.success).to.equal(false);
        expect(describeIssues(result.error!)).to.include(testCase.names);
      });
    }
  });

  it('fills the documented defaults', function () {
    const policy = BackupPolicySpecSchema.parse({
      selector: {},
      schedule: '@daily',
      snapshotClass: { template: { driver: 'local.snapback.dev' } },
      retention: { keepLast: 1 },
    });
    expect(policy.timeZone).to.equal('UTC');
    expect(policy.suspend).to.equal(false);
    expect(policy.retention?.minReady).to.equal(1);
    expect(policy.concurrencyPolicy).to.equal('Forbid');
    expect(policy.readyDeadlineSeconds).to.equal(3600);
    expect(policy.snapshotClass?.template).to.deep.equal({
      driver: 'local.snapback.dev',
      deletionPolicy: 'Delete',
      forceDelete: false,
    });
    const restore = RestoreJobSpecSchema.parse({
      source: { backupPolicy: { name: 'nightly', pvcName: 'data' } },
      target: { pvcName: 'restored', size: 1073741824 },
    });
    expect(restore.source.backupPolicy?.at).to.equal('latest');
    expect(restore.pendingDeadlineSeconds).to.equal(3600);
    expect(restore.target.size, 'an integer size becomes a quantity string').to.equal('1073741824');
  });

  it('reports every problem of a spec at once, for a status condition', function () {
    const result = BackupPolicySpecSchema.safeParse({ schedule: '61 * * * *', retention: {} });
    expect(result.success).to.equal(false);
    const text = describeIssues(result.error!);
    expect(text).to.include('selector or pvcNames');
    expect(text).to.include('schedule: schedule must be a 5-field cron expression');
    expect(text).to.include('retention: retention needs at least one of');
  });

  describe('isPositiveQuantity', function () {
    const table: [string, boolean][] = [
      ['20Gi', true],
      ['500M', true],
      ['1.5Ti', true],
      ['+1', true],
      ['.5', true],
      ['1e9', true],
      ['1E', true],
      ['100m', true],
      ['0', false],
      ['0.0Gi', false],
      ['-1Gi', false],
      ['20GB', false],
      ['1ki', false],
      ['1e3.5', false],
      ['Gi', false],
      ['', false],
    ];
    for (const [text, positive] of table) {
      it(`${JSON.stringify(text)} -> ${positive}`, function () {
        expect(isPositiveQuantity(text)).to.equal(positive);
      });
    }
  });

  it('summarises a restore source for the SOURCE column', function () {
    expect(restoreSourceSummary({ volumeSnapshotName: 'snap-1' })).to.equal('snapshot/snap-1');
    expect(
      restoreSourceSummary({ backupPolicy: { name: 'nightly', pvcName: 'data', at: 'latest' } }),
    ).to.equal('policy/nightly pvc/data at latest');
  });

  it('accepts the BackupPolicy and RestoreJob samples in examples/', function () {
    const dir = path.join(repoRoot, 'examples');
    let checked = 0;
    for (const file of readdirSync(dir)) {
      for (const document of parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))) {
        const object = document.toJS() as { kind?: string };
        const schema = object && zodSchemaFor(object.kind ?? '');
        if (!schema) continue;
        const result = schema.safeParse(object);
        expect(result.success, `${file}: ${result.error && describeIssues(result.error)}`).to.equal(
          true,
        );
        checked++;
      }
    }
    expect(checked, 'samples of both kinds').to.be.at.least(4);
  });
});
