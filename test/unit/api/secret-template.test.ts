import { expect } from 'chai';
import {
  PARAM_SNAPSHOTTER_LIST_SECRET_NAME,
  PARAM_SNAPSHOTTER_LIST_SECRET_NAMESPACE,
  PARAM_SNAPSHOTTER_SECRET_NAME,
  PARAM_SNAPSHOTTER_SECRET_NAMESPACE,
} from '../../../src/api/csi-parameters.js';
import {
  SECRET_TEMPLATE_PLACEHOLDERS,
  fillPlaceholders,
  invalidSecretField,
  resolveSecretTemplate,
  secretParameterKeys,
  secretTemplates,
  type SecretField,
  type SecretTemplateKind,
} from '../../../src/api/secret-template.js';

/** A distinct value per placeholder, so a swapped placeholder shows. */
const VALUES: Record<string, string> = {
  'volumesnapshotcontent.name': 'snapcontent-1',
  'volumesnapshot.namespace': 'snap-ns',
  'volumesnapshot.name': 'snap',
  'pv.name': 'pvc-1',
  'pvc.namespace': 'pvc-ns',
  'pvc.name': 'data',
};

const VOLUME_KINDS = [
  'provisioner',
  'controller-publish',
  'node-stage',
  'node-publish',
  'controller-expand',
  'node-expand',
] as const;

/** What upstream's sidecars allow each kind of Secret, written out once more by hand. */
const EXPECTED: Record<SecretTemplateKind, Record<SecretField, string[]>> = {
  snapshotter: {
    namespace: ['volumesnapshotcontent.name', 'volumesnapshot.namespace'],
    name: ['volumesnapshotcontent.name', 'volumesnapshot.namespace', 'volumesnapshot.name'],
  },
  'snapshotter-list': {
    namespace: ['volumesnapshotcontent.name'],
    name: ['volumesnapshotcontent.name'],
  },
  ...(Object.fromEntries(
    VOLUME_KINDS.map((kind) => [
      kind,
      { namespace: ['pv.name', 'pvc.namespace'], name: ['pv.name', 'pvc.namespace', 'pvc.name'] },
    ]),
  ) as Record<(typeof VOLUME_KINDS)[number], Record<SecretField, string[]>>),
};

const resolve = (kind: SecretTemplateKind, field: SecretField, template: string) =>
  resolveSecretTemplate(kind, field, template, VALUES as never);

describe('secret templates', function () {
  it('has a row for every kind of Secret, and no other', function () {
    expect(Object.keys(SECRET_TEMPLATE_PLACEHOLDERS)).to.have.members(Object.keys(EXPECTED));
  });

  for (const [kind, fields] of Object.entries(EXPECTED) as Array<
    [SecretTemplateKind, Record<SecretField, string[]>]
  >) {
    describe(kind, function () {
      it(`reads csi.storage.k8s.io/${kind}-secret-name and -namespace`, function () {
        expect(secretParameterKeys(kind)).to.deep.equal({
          name: `csi.storage.k8s.io/${kind}-secret-name`,
          namespace: `csi.storage.k8s.io/${kind}-secret-namespace`,
        });
      });

      for (const field of ['name', 'namespace'] as const) {
        const allowed = fields[field];
        for (const placeholder of Object.keys(VALUES)) {
          if (allowed.includes(placeholder)) {
            it(`fills \${${placeholder}} in a ${field}`, function () {
              expect(resolve(kind, field, `x-\${${placeholder}}-y`)).to.deep.equal({
                value: `x-${VALUES[placeholder]}-y`,
              });
            });
          } else {
            it(`refuses \${${placeholder}} in a ${field}`, function () {
              expect(resolve(kind, field, `\${${placeholder}}`)).to.deep.equal({
                unknown: [placeholder],
                allowed,
              });
            });
          }
        }
      }
    });
  }

  it('fills every use of a placeholder and keeps the text around it', function () {
    expect(
      resolve('snapshotter', 'name', '${volumesnapshot.name}.${volumesnapshot.name}-creds'),
    ).to.deep.equal({ value: 'snap.snap-creds' });
    expect(resolve('provisioner', 'namespace', 'kube-system')).to.deep.equal({
      value: 'kube-system',
    });
  });

  it('lists every unknown placeholder in order of use, and what the field allows', function () {
    expect(
      resolve('provisioner', 'name', '${pvc.name}-${foo}-${pvc.annotations}-${}'),
    ).to.deep.equal({
      unknown: ['foo', 'pvc.annotations', ''],
      allowed: ['pv.name', 'pvc.namespace', 'pvc.name'],
    });
  });

  it('leaves a `${` without its `}` as written (the list secret refuses it itself)', function () {
    expect(resolve('snapshotter-list', 'name', 'abc${volumesnapshotcontent.name')).to.deep.equal({
      value: 'abc${volumesnapshotcontent.name',
    });
  });

  describe('the name/namespace pair', function () {
    const keys = secretParameterKeys('snapshotter');
    const cases: Array<[string, Record<string, string>, ReturnType<typeof secretTemplates>]> = [
      ['neither set', { other: 'x' }, undefined],
      ['only the name', { [keys.name]: 'creds' }, 'incomplete'],
      ['only the namespace', { [keys.namespace]: 'ns' }, 'incomplete'],
      [
        'both',
        { [keys.name]: 'creds', [keys.namespace]: 'ns' },
        { name: 'creds', namespace: 'ns' },
      ],
      ['both, empty', { [keys.name]: '', [keys.namespace]: '' }, { name: '', namespace: '' }],
    ];
    for (const [label, parameters, expected] of cases) {
      it(`${label}: ${JSON.stringify(expected)}`, function () {
        expect(secretTemplates(parameters, keys)).to.deep.equal(expected);
      });
    }

    it('are the keys csi-parameters names for the snapshotter Secrets', function () {
      expect(secretParameterKeys('snapshotter')).to.deep.equal({
        name: PARAM_SNAPSHOTTER_SECRET_NAME,
        namespace: PARAM_SNAPSHOTTER_SECRET_NAMESPACE,
      });
      expect(secretParameterKeys('snapshotter-list')).to.deep.equal({
        name: PARAM_SNAPSHOTTER_LIST_SECRET_NAME,
        namespace: PARAM_SNAPSHOTTER_LIST_SECRET_NAMESPACE,
      });
    });
  });

  describe('a resolved reference', function () {
    const cases: Array<[string, { name: string; namespace: string }, SecretField | undefined]> = [
      ['valid', { name: 'snap.creds-1', namespace: 'kube-system' }, undefined],
      ['longest valid', { name: 'a'.repeat(253), namespace: 'n'.repeat(63) }, undefined],
      ['upper-case name', { name: 'Bad_Name', namespace: 'ns' }, 'name'],
      ['empty name', { name: '', namespace: 'ns' }, 'name'],
      ['name too long', { name: 'a'.repeat(254), namespace: 'ns' }, 'name'],
      ['name ending in a dot', { name: 'creds.', namespace: 'ns' }, 'name'],
      ['dotted namespace', { name: 'creds', namespace: 'kube.system' }, 'namespace'],
      ['empty namespace', { name: 'creds', namespace: '' }, 'namespace'],
      ['namespace too long', { name: 'creds', namespace: 'n'.repeat(64) }, 'namespace'],
      ['both bad: the namespace first', { name: 'A', namespace: 'B' }, 'namespace'],
    ];
    for (const [label, ref, expected] of cases) {
      it(`${label}: ${expected ?? 'a namespace and a Secret name'}`, function () {
        expect(invalidSecretField(ref)).to.equal(expected);
      });
    }
  });
});

describe('fillPlaceholders', function () {
  it('fills each known placeholder, keeps other text, and lists the unknown ones with the known', function () {
    expect(fillPlaceholders('pre-${a}-${b}', { a: 'x', b: 'y' })).to.deep.equal({
      value: 'pre-x-y',
    });
    expect(fillPlaceholders('${a}${c}${d}', { a: 'x', b: 'y' })).to.deep.equal({
      unknown: ['c', 'd'],
      allowed: ['a', 'b'],
    });
    expect(fillPlaceholders('plain', {})).to.deep.equal({ value: 'plain' });
  });
});
