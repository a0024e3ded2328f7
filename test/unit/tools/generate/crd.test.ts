import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import {
  BACKUP_POLICY_DEFINITION,
  RESTORE_JOB_DEFINITION,
  customResourceDefinition,
  renderGeneratedCrds,
  toStructuralSchema,
  type JSONSchemaProps,
} from '../../../../tools/generate/crd.js';
import { repoRoot } from '../../../support/tools.js';

const crdsDir = path.join(repoRoot, 'crds');

interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  subresources?: { status?: object };
  additionalPrinterColumns?: { name: string; jsonPath: string; type: string }[];
  schema: { openAPIV3Schema: JSONSchemaProps };
}

interface Crd {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; shortNames?: string[]; categories?: string[] };
    versions: CrdVersion[];
  };
}

function readCrds(): Map<string, Crd> {
  return new Map(
    readdirSync(crdsDir)
      .filter((file) => file.endsWith('.yaml'))
      .map((file) => [file, parse(readFileSync(path.join(crdsDir, file), 'utf8')) as Crd]),
  );
}

function crdOf(kind: string): Crd {
  const crd = [...readCrds().values()].find((c) => c.spec.names.kind === kind);
  if (!crd) throw new Error(`no CRD for ${kind} under crds/`);
  return crd;
}

function servedVersion(crd: Crd): CrdVersion {
  return crd.spec.versions.find((v) => v.served && v.storage)!;
}

/** Every violation of the structural-schema rules the API server enforces, by path. */
function structuralViolations(node: JSONSchemaProps, at: string, out: string[] = []): string[] {
  const intOrString = node['x-kubernetes-int-or-string'] === true;
  const preserve = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (node.type === undefined && !intOrString && !preserve) out.push(`${at}: no type`);
  for (const keyword of ['$ref', 'oneOf', 'allOf', 'not', 'nullable', '$schema', 'definitions']) {
    if (keyword in node) out.push(`${at}: ${keyword}`);
  }
  if (node.anyOf !== undefined) {
    const branches = node.anyOf as JSONSchemaProps[];
    const onlyTypes = branches.every((b) => Object.keys(b).join() === 'type');
    if (!intOrString || !onlyTypes) out.push(`${at}: anyOf outside int-or-string`);
  }
  if (node.additionalProperties !== undefined) {
    if (typeof node.additionalProperties !== 'object')
      out.push(`${at}: boolean additionalProperties`);
    if (node.properties !== undefined) out.push(`${at}: properties and additionalProperties`);
    else structuralViolations(node.additionalProperties, `${at}[*]`, out);
  }
  for (const name of node.required ?? []) {
    if (!node.properties?.[name]) out.push(`${at}: required ${name} is not a property`);
  }
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    structuralViolations(child, `${at}.${name}`, out);
  }
  if (node.type === 'array') {
    if (!node.items) out.push(`${at}: array without items`);
    else structuralViolations(node.items, `${at}[]`, out);
    if (node['x-kubernetes-list-type'] === 'map') {
      const keys = (node['x-kubernetes-list-map-keys'] as string[] | undefined) ?? [];
      if (keys.length === 0) out.push(`${at}: list-map without keys`);
      for (const key of keys) {
        if (!node.items?.required?.includes(key))
          out.push(`${at}: list-map key ${key} not required`);
      }
    }
  }
  if (node.type === 'object' && node.items !== undefined) out.push(`${at}: object with items`);
  return out;
}

/** Properties (at any depth below spec and status) that carry no description. */
function undescribed(node: JSONSchemaProps, at: string, out: string[] = []): string[] {
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    if (!child.description?.trim()) out.push(`${at}.${name}`);
    undescribed(child, `${at}.${name}`, out);
  }
  if (node.items) undescribed(node.items, `${at}[]`, out);
  return out;
}

function nodeAt(root: JSONSchemaProps, dotted: string): JSONSchemaProps {
  let node = root;
  for (const name of dotted.split('.')) {
    const next = node.properties?.[name] ?? (name === '[]' ? node.items : undefined);
    if (!next) throw new Error(`no ${dotted} in the schema`);
    node = next;
  }
  return node;
}

function rulesAt(root: JSONSchemaProps, dotted: string): string[] {
  const validations = (nodeAt(root, dotted)['x-kubernetes-validations'] ?? []) as {
    rule: string;
  }[];
  return validations.map((v) => v.rule);
}

describe('api: CRDs under crds/', function () {
  it('are not stale: make generate would write exactly the committed snapback.dev files', function () {
    for (const [file, content] of renderGeneratedCrds()) {
      const committed = readFileSync(path.join(crdsDir, file), 'utf8');
      expect(committed === content, `crds/${file} is stale: run make generate`).to.equal(true);
    }
  });

  it('are generated deterministically', function () {
    expect([...renderGeneratedCrds()]).to.deep.equal([...renderGeneratedCrds()]);
  });

  it('include both snapback.dev kinds and the three kinds of each snapshot API group', function () {
    const kinds = [...readCrds().values()].map((crd) => `${crd.spec.names.kind}.${crd.spec.group}`);
    expect(kinds).to.have.members([
      'BackupPolicy.snapback.dev',
      'RestoreJob.snapback.dev',
      'VolumeSnapshot.snapshot.storage.k8s.io',
      'VolumeSnapshotContent.snapshot.storage.k8s.io',
      'VolumeSnapshotClass.snapshot.storage.k8s.io',
      'VolumeGroupSnapshot.groupsnapshot.storage.k8s.io',
      'VolumeGroupSnapshotContent.groupsnapshot.storage.k8s.io',
      'VolumeGroupSnapshotClass.groupsnapshot.storage.k8s.io',
    ]);
  });

  describe('every version schema is structural', function () {
    for (const [file, crd] of readCrds()) {
      for (const version of crd.spec.versions) {
        it(`${file} ${version.name}`, function () {
          expect(structuralViolations(version.schema.openAPIV3Schema, 'self')).to.deep.equal([]);
        });
      }
    }
  });

  describe('snapback.dev kinds', function () {
    for (const definition of [BACKUP_POLICY_DEFINITION, RESTORE_JOB_DEFINITION]) {
      it(`${definition.kind}: names, category, status subresource`, function () {
        const crd = crdOf(definition.kind);
        expect(crd.metadata.name).to.equal(`${definition.plural}.snapback.dev`);
        expect(crd.spec.scope).to.equal('Namespaced');
        expect(crd.spec.names.categories).to.deep.equal(['snapback']);
        const version = servedVersion(crd);
        expect(version.name).to.equal('v1alpha1');
        expect(version.subresources?.status).to.deep.equal({});
      });

      it(`${definition.kind}: every spec and status field has a description`, function () {
        const root = servedVersion(crdOf(definition.kind)).schema.openAPIV3Schema;
        expect(undescribed(nodeAt(root, 'spec'), 'spec')).to.deep.equal([]);
        expect(undescribed(nodeAt(root, 'status'), 'status')).to.deep.equal([]);
      });
    }

    it('BackupPolicy: short name bp and the printer columns', function () {
      const crd = crdOf('BackupPolicy');
      expect(crd.spec.names.shortNames).to.deep.equal(['bp']);
      const columns = servedVersion(crd).additionalPrinterColumns!;
      expect(columns.map((c) => c.name.toUpperCase())).to.deep.equal([
        'SCHEDULE',
        'SUSPENDED',
        'LAST',
        'NEXT',
        'READY/TOTAL',
        'CONSISTENCY',
        'GROUPS',
        'MEMBERS',
        'AGE',
      ]);
      const readyTotal = columns.find((c) => c.name === 'Ready/Total')!;
      const root = servedVersion(crd).schema.openAPIV3Schema;
      expect(readyTotal.type).to.equal('string');
      expect(nodeAt(root, readyTotal.jsonPath.slice(1)).type).to.equal('string');
      // consistency Group: ready groups, and the members of the newest (wide output only).
      const groups = columns.find((c) => c.name === 'Groups')!;
      expect(groups.jsonPath).to.equal('.status.readyOverTotalGroups');
      expect(nodeAt(root, groups.jsonPath.slice(1)).type).to.equal('string');
      const members = columns.find((c) => c.name === 'Members') as {
        priority?: number;
        jsonPath: string;
      };
      expect(members.jsonPath).to.equal('.status.lastGroup.readyOverTotal');
      expect(members.priority).to.equal(1);
    });

    it('RestoreJob: short name rj and the printer columns', function () {
      const crd = crdOf('RestoreJob');
      expect(crd.spec.names.shortNames).to.deep.equal(['rj']);
      const columns = servedVersion(crd).additionalPrinterColumns!;
      expect(columns.map((c) => c.name.toUpperCase())).to.deep.equal([
        'SOURCE',
        'TARGET',
        'PHASE',
        'STEP',
        'AGE',
      ]);
    });

    it('every printer column points at a field of the schema', function () {
      for (const kind of ['BackupPolicy', 'RestoreJob']) {
        const version = servedVersion(crdOf(kind));
        for (const column of version.additionalPrinterColumns!) {
          if (column.jsonPath.startsWith('.metadata.')) continue;
          expect(() =>
            nodeAt(version.schema.openAPIV3Schema, column.jsonPath.slice(1)),
          ).not.to.throw();
        }
      }
    });

    it('carry the cross-field CEL rules', function () {
      const bp = servedVersion(crdOf('BackupPolicy')).schema.openAPIV3Schema;
      const rj = servedVersion(crdOf('RestoreJob')).schema.openAPIV3Schema;
      expect(rulesAt(bp, 'spec')).to.include(
        '(has(self.selector) ? 1 : 0) + (has(self.pvcNames) ? 1 : 0) == 1',
      );
      expect(rulesAt(bp, 'spec.snapshotClass')).to.include(
        '(has(self.name) ? 1 : 0) + (has(self.template) ? 1 : 0) == 1',
      );
      expect(rulesAt(bp, 'spec.schedule').join()).to.match(/^self\.matches\('\^\(@yearly\|/);
      expect(rulesAt(rj, 'spec.source')).to.include(
        '(has(self.volumeSnapshotName) ? 1 : 0) + (has(self.backupPolicy) ? 1 : 0) == 1',
      );
      expect(rulesAt(rj, 'spec')).to.include('self == oldSelf');
      expect(rulesAt(rj, 'spec.source.backupPolicy.at').join()).to.include("self == 'latest' ||");
      expect(rulesAt(rj, 'spec.target.size').join()).to.include('isQuantity(self)');
      expect(nodeAt(rj, 'spec.target.size')['x-kubernetes-int-or-string']).to.equal(true);
    });

    it('conditions are a list-map keyed by type', function () {
      for (const kind of ['BackupPolicy', 'RestoreJob']) {
        const conditions = nodeAt(
          servedVersion(crdOf(kind)).schema.openAPIV3Schema,
          'status.conditions',
        );
        expect(conditions['x-kubernetes-list-type']).to.equal('map');
        expect(conditions['x-kubernetes-list-map-keys']).to.deep.equal(['type']);
        expect(Object.keys(conditions.items!.properties!)).to.have.members([
          'type',
          'status',
          'reason',
          'message',
          'lastTransitionTime',
          'observedGeneration',
        ]);
      }
    });

    it('defaults are in the schema, so the API server applies them', function () {
      const bp = servedVersion(crdOf('BackupPolicy')).schema.openAPIV3Schema;
      expect(nodeAt(bp, 'spec.timeZone').default).to.equal('UTC');
      expect(nodeAt(bp, 'spec.suspend').default).to.equal(false);
      expect(nodeAt(bp, 'spec.retention.minReady').default).to.equal(1);
      expect(nodeAt(bp, 'spec.snapshotClass.template.forceDelete').default).to.equal(false);
    });

    it('the generated object matches the rendered YAML', function () {
      const crd = customResourceDefinition(BACKUP_POLICY_DEFINITION);
      expect(parse(renderGeneratedCrds().get('snapback.dev_backuppolicies.yaml')!)).to.deep.equal(
        crd,
      );
    });
  });

  describe('snapshot.storage.k8s.io kinds', function () {
    const expected: [string, string, string[]][] = [
      ['VolumeSnapshot', 'Namespaced', ['vs']],
      ['VolumeSnapshotContent', 'Cluster', ['vsc', 'vscs']],
      ['VolumeSnapshotClass', 'Cluster', ['vsclass', 'vsclasses']],
    ];
    for (const [kind, scope, shortNames] of expected) {
      it(`${kind}: approved-API annotation, scope, short names, v1 stored`, function () {
        const crd = crdOf(kind);
        expect(crd.metadata.annotations?.['api-approved.kubernetes.io']).to.match(/^https:\/\//);
        expect(crd.spec.scope).to.equal(scope);
        expect(crd.spec.names.shortNames).to.deep.equal(shortNames);
        expect(servedVersion(crd).name).to.equal('v1');
        const v1beta1 = crd.spec.versions.find((v) => v.name === 'v1beta1');
        expect(v1beta1, 'v1beta1 kept, not served').to.include({ served: false, storage: false });
      });
    }

    it('deletionPolicy is Delete or Retain wherever it appears', function () {
      const vsc = servedVersion(crdOf('VolumeSnapshotContent')).schema.openAPIV3Schema;
      const vsclass = servedVersion(crdOf('VolumeSnapshotClass')).schema.openAPIV3Schema;
      expect(nodeAt(vsc, 'spec.deletionPolicy').enum).to.deep.equal(['Delete', 'Retain']);
      expect(nodeAt(vsclass, 'deletionPolicy').enum).to.deep.equal(['Delete', 'Retain']);
      expect(vsclass.required).to.have.members(['driver', 'deletionPolicy']);
    });

    it('carry the upstream CEL rules', function () {
      const vs = servedVersion(crdOf('VolumeSnapshot')).schema.openAPIV3Schema;
      const vsc = servedVersion(crdOf('VolumeSnapshotContent')).schema.openAPIV3Schema;
      expect(rulesAt(vs, 'spec.source')).to.have.length(3);
      expect(rulesAt(vs, 'spec.source.persistentVolumeClaimName')).to.deep.equal([
        'self == oldSelf',
      ]);
      expect(rulesAt(vs, 'spec.volumeSnapshotClassName')).to.deep.equal(['size(self) > 0']);
      expect(rulesAt(vsc, 'spec.source')).to.have.length(3);
      expect(rulesAt(vsc, 'spec.sourceVolumeMode')).to.deep.equal(['self == oldSelf']);
      // upstream's spelling: namespace is a CEL reserved word, escaped as __namespace__
      expect(rulesAt(vsc, 'spec.volumeSnapshotRef')).to.deep.equal([
        'has(self.name) && has(self.__namespace__)',
      ]);
      expect(nodeAt(vsc, 'status.restoreSize').minimum).to.equal(0);
    });
  });
});

describe('api: toStructuralSchema', function () {
  it('drops what zod adds but the API server refuses', function () {
    const schema = toStructuralSchema(
      z.strictObject({
        count: z.int().min(0),
        when: z.iso.datetime(),
        size: z.union([z.int(), z.string()]).meta({ 'x-kubernetes-int-or-string': true }),
      }),
    );
    expect(schema).to.not.have.property('additionalProperties');
    expect(schema.properties!.count).to.deep.equal({ type: 'integer', minimum: 0 });
    expect(schema.properties!.when).to.deep.equal({ type: 'string', format: 'date-time' });
    expect(schema.properties!.size).to.deep.equal({ 'x-kubernetes-int-or-string': true });
  });

  it('keeps a map as additionalProperties', function () {
    const schema = toStructuralSchema(z.record(z.string(), z.string()));
    expect(schema).to.deep.equal({ type: 'object', additionalProperties: { type: 'string' } });
  });

  const unsupported: [string, z.ZodType, RegExp][] = [
    [
      'a union of objects',
      z.union([z.object({ a: z.string() }), z.object({ b: z.string() })]),
      /union/,
    ],
    ['a loose object', z.looseObject({ a: z.string() }), /properties and additionalProperties/],
    ['a nullable field', z.object({ a: z.string().nullable() }), /nullable/],
  ];
  for (const [name, schema, problem] of unsupported) {
    it(`refuses ${name}`, function () {
      expect(() => toStructuralSchema(schema)).to.throw(problem);
    });
  }
});
