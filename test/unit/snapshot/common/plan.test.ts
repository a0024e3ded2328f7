import { expect } from 'chai';
import {
  KindPlans,
  secretAnnotations,
  secretReference,
  warnAndRetry,
  type KindDescription,
  type TemplateResolution,
} from '../../../../src/snapshot/common/plan.js';

const now = new Date('2026-03-01T12:00:00.000Z');
const NOW = '2026-03-01T12:00:00Z';

/** A group-like kind, so every name the plans derive from `kind` is checked. */
const DESCRIPTION: KindDescription<'patchStatus'> = {
  statusAction: 'patchStatus',
  apiVersion: 'example.dev/v1',
  kind: 'VolumeGroupSnapshot',
  noun: 'group snapshot',
  contentNameFor: (uid) => `content-${uid}`,
  defaultClassAnnotation: 'example.dev/is-default',
  secretParameterKeys: { name: 'secret-name', namespace: 'secret-namespace' },
  deletionSecretKeys: { name: 'ann/secret-name', namespace: 'ann/secret-namespace' },
  beingDeletedAnnotation: 'ann/being-deleted',
  reasons: {
    bindFailed: 'BindFailed',
    contentDeleteError: 'DeleteError',
    contentMissing: 'Missing',
    contentMismatch: 'Mismatch',
    contentMisbound: 'Misbound',
    misbound: 'ObjectMisbound',
    created: 'Created',
    ready: 'Ready',
  },
};
const plans = new KindPlans(DESCRIPTION);

interface TestContent {
  metadata: {
    name?: string;
    deletionTimestamp?: string;
    annotations?: Record<string, string>;
  };
  spec: {
    volumeGroupSnapshotRef: { name?: string; namespace?: string; uid?: string };
    volumeGroupSnapshotClassName?: string;
  };
  status?: { readyToUse?: boolean };
}

type TestObject = {
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
  status?: { error?: { message?: string; time?: string }; readyToUse?: boolean };
};

const object = (status?: TestObject['status']): TestObject => ({
  metadata: { name: 'g', namespace: 'ns', uid: 'u1', resourceVersion: '7' },
  ...(status ? { status } : {}),
});

function content(
  ref: TestContent['spec']['volumeGroupSnapshotRef'] = { name: 'g', namespace: 'ns', uid: 'u1' },
  metadata: Partial<TestContent['metadata']> = {},
  className?: string,
): TestContent {
  return {
    metadata: { name: 'content-u1', ...metadata },
    spec: {
      volumeGroupSnapshotRef: ref,
      ...(className !== undefined ? { volumeGroupSnapshotClassName: className } : {}),
    },
  };
}

const errorPatch = (message: string, readyToUse = true) => ({
  type: 'patchStatus',
  status: { error: { time: NOW, message }, ...(readyToUse ? { readyToUse: false } : {}) },
});
const warningEvent = (reason: string, message: string) => ({
  type: 'event',
  eventType: 'Warning',
  reason,
  message,
});

describe('snapshot common plan: KindPlans', function () {
  it('derives upstream names from the kind', function () {
    expect(plans.contentKind).to.equal('VolumeGroupSnapshotContent');
    expect(plans.contentFields).to.deep.equal({
      ref: 'volumeGroupSnapshotRef',
      className: 'volumeGroupSnapshotClassName',
    });
    const mirror = plans.statusMirror(object(), { metadata: { name: 'c' } }, { creationTime: NOW });
    expect(mirror.patch).to.deep.equal({
      boundVolumeGroupSnapshotContentName: 'c',
      readyToUse: false,
      creationTime: NOW,
    });
    expect(mirror.events).to.deep.equal([
      {
        type: 'event',
        eventType: 'Normal',
        reason: 'Created',
        message: 'GroupSnapshot ns/g was successfully created by the CSI driver.',
      },
    ]);
  });

  describe('error records', function () {
    const cases = [
      {
        name: 'a new message: status patch and Warning',
        obj: object(),
        setReadyFalse: true,
        expected: [errorPatch('boom'), warningEvent('R', 'boom')],
      },
      {
        name: 'readyToUse left alone when asked',
        obj: object(),
        setReadyFalse: false,
        expected: [errorPatch('boom', false), warningEvent('R', 'boom')],
      },
      {
        name: 'the same message recorded already: nothing',
        obj: object({ error: { message: 'boom', time: NOW } }),
        setReadyFalse: true,
        expected: [],
      },
    ];
    for (const { name, obj, setReadyFalse, expected } of cases) {
      it(name, function () {
        expect(plans.errorActions(obj, 'R', 'boom', now, setReadyFalse)).to.deep.equal(expected);
        expect(plans.failure(obj, 'R', 'boom', now, setReadyFalse)).to.deep.equal({
          actions: expected,
          retry: 'boom',
        });
      });
    }
  });

  describe('readyBinding', function () {
    const cases = [
      {
        name: 'the content is gone',
        found: undefined,
        expected: [
          errorPatch('VolumeGroupSnapshotContent is missing'),
          warningEvent('Missing', 'VolumeGroupSnapshotContent is missing'),
        ],
      },
      {
        name: 'the content points at another uid',
        found: content({ name: 'g', namespace: 'ns', uid: 'other' }),
        expected: [
          errorPatch(
            'VolumeGroupSnapshotContent is not bound to the VolumeGroupSnapshot correctly',
          ),
          warningEvent(
            'ObjectMisbound',
            'VolumeGroupSnapshotContent is not bound to the VolumeGroupSnapshot correctly',
          ),
        ],
      },
      { name: 'the binding holds', found: content(), expected: [] },
    ];
    for (const { name, found, expected } of cases) {
      it(name, function () {
        expect(plans.readyBinding(object(), found, now)).to.deep.equal(expected);
      });
    }
  });

  describe('checkedContent', function () {
    const madeFor = (preprovisioned: boolean) => () => ({
      preprovisioned,
      dynamic: !preprovisioned,
    });
    const failed = (reason: string, message: string) => ({
      failure: {
        actions: [errorPatch(message), warningEvent(reason, message)],
        retry: message,
      },
    });
    const cases = [
      {
        name: 'no content yet',
        preprovisionedName: undefined,
        found: undefined,
        pre: false,
        expected: {},
      },
      {
        name: 'dynamic: its content by uid, bound',
        preprovisionedName: undefined,
        found: content(),
        pre: false,
        expected: { content: content() },
      },
      {
        name: 'pre-provisioned: a ref without uid still points back',
        preprovisionedName: 'content-u1',
        found: content({ name: 'g', namespace: 'ns' }),
        pre: true,
        expected: { content: content({ name: 'g', namespace: 'ns' }) },
      },
      {
        name: 'dynamic: a ref without uid is not bound',
        preprovisionedName: undefined,
        found: content({ name: 'g', namespace: 'ns' }),
        pre: false,
        expected: failed(
          'Misbound',
          'VolumeGroupSnapshotContent [content-u1] is bound to a different group snapshot',
        ),
      },
      {
        name: 'pre-provisioned name, dynamic content',
        preprovisionedName: 'content-u1',
        found: content(),
        pre: false,
        expected: failed(
          'Mismatch',
          'VolumeGroupSnapshotContent is dynamically provisioned while expecting a pre-provisioned one',
        ),
      },
      {
        name: 'dynamic object, pre-provisioned content',
        preprovisionedName: undefined,
        found: content(),
        pre: true,
        expected: failed(
          'Mismatch',
          'VolumeGroupSnapshotContent content-u1 is pre-provisioned while expecting a dynamically provisioned one',
        ),
      },
    ];
    for (const { name, preprovisionedName, found, pre, expected } of cases) {
      it(name, function () {
        const looked: string[] = [];
        const lookup = (contentName: string) => {
          looked.push(contentName);
          return found;
        };
        const result = plans.checkedContent(
          object(),
          preprovisionedName,
          lookup,
          madeFor(pre),
          now,
        );
        expect(result).to.deep.equal(expected);
        expect(looked).to.deep.equal(['content-u1']);
      });
    }
  });

  describe('binding', function () {
    const cases = [
      {
        name: 'fills the uid and copies the class',
        className: 'gold',
        expectedAction: { className: 'gold' },
        expectedSpec: {
          volumeGroupSnapshotRef: { name: 'g', namespace: 'ns', uid: 'u1' },
          volumeGroupSnapshotClassName: 'gold',
        },
      },
      {
        name: 'fills only the uid when the object names no class',
        className: undefined,
        expectedAction: {},
        expectedSpec: { volumeGroupSnapshotRef: { name: 'g', namespace: 'ns', uid: 'u1' } },
      },
    ];
    for (const { name, className, expectedAction, expectedSpec } of cases) {
      it(name, function () {
        const found = content({ name: 'g', namespace: 'ns' });
        const bound = plans.binding('bind', object(), found, className);
        expect(bound.action).to.deep.equal({
          type: 'bind',
          contentName: 'content-u1',
          uid: 'u1',
          ...expectedAction,
          onFailure: {
            reason: 'BindFailed',
            message: 'GroupSnapshot failed to bind VolumeGroupSnapshotContent,',
            toStatus: true,
          },
        });
        expect(bound.content.spec).to.deep.equal(expectedSpec);
        expect(found.spec.volumeGroupSnapshotRef.uid, 'the cached content is not changed').to.equal(
          undefined,
        );
      });
    }
  });

  describe('contentRelease', function () {
    const types = { annotate: 'annotate', delete: 'delete' } as const;
    const deleteAction = {
      type: 'delete',
      contentName: 'content-u1',
      onFailure: {
        reason: 'DeleteError',
        message: 'Failed to delete group snapshot content API object:',
        toStatus: false,
      },
    };
    const annotateAction = { type: 'annotate', contentName: 'content-u1' };
    const marked = { annotations: { 'ann/being-deleted': 'yes' } };
    const cases = [
      {
        name: 'Delete: marked, then deleted',
        metadata: {},
        del: true,
        expected: [annotateAction, deleteAction],
      },
      { name: 'Retain: only marked', metadata: {}, del: false, expected: [annotateAction] },
      { name: 'marked already: deleted', metadata: marked, del: true, expected: [deleteAction] },
      {
        name: 'marked and being deleted: nothing',
        metadata: { ...marked, deletionTimestamp: NOW },
        del: true,
        expected: [],
      },
    ];
    for (const { name, metadata, del, expected } of cases) {
      it(name, function () {
        expect(plans.contentRelease(content(undefined, metadata), del, types)).to.deep.equal(
          expected,
        );
      });
    }
  });

  it('builds a new content its metadata and ref', function () {
    expect(plans.newContentMetadata('c', undefined)).to.deep.equal({ name: 'c' });
    expect(plans.newContentMetadata('c', { name: 's', namespace: 'n' })).to.deep.equal({
      name: 'c',
      annotations: { 'ann/secret-name': 's', 'ann/secret-namespace': 'n' },
    });
    expect(plans.referenceTo(object())).to.deep.equal({
      apiVersion: 'example.dev/v1',
      kind: 'VolumeGroupSnapshot',
      name: 'g',
      namespace: 'ns',
      uid: 'u1',
      resourceVersion: '7',
    });
    expect(secretAnnotations(undefined, DESCRIPTION.deletionSecretKeys)).to.deep.equal({});
  });

  it('contentsOf, chooseDefaultClass and boundVolume speak of the kind', function () {
    expect(plans.contentsOf('a', undefined, 'u1')).to.deep.equal(['a', 'content-u1']);
    const defaults = (driver: string) => ({
      driver,
      metadata: { annotations: { 'example.dev/is-default': 'true' } },
    });
    expect(plans.chooseDefaultClass([defaults('d')], 'other')).to.deep.equal({
      error: 'cannot find default group snapshot class',
    });
    expect(plans.chooseDefaultClass([defaults('d')], 'd')).to.deep.equal({
      class: defaults('d'),
    });
    expect(
      plans.boundVolume({ metadata: { name: 'p' }, status: { phase: 'Pending' } }, undefined),
    ).to.deep.equal({
      error: 'the PVC p is not yet bound to a PV, will not attempt to take a group snapshot',
    });
  });

  it('statusActions: the patch, when there is one, then the events', function () {
    const onFailure = { reason: 'R', message: 'm', toStatus: true };
    const event = warningEvent('E', 'e') as {
      type: 'event';
      eventType: 'Warning';
      reason: string;
      message: string;
    };
    expect(
      plans.statusActions({ patch: { readyToUse: true }, events: [event] }, onFailure),
    ).to.deep.equal([{ type: 'patchStatus', status: { readyToUse: true }, onFailure }, event]);
    expect(plans.statusActions({ patch: {}, events: [event] }, onFailure)).to.deep.equal([event]);
  });
});

describe('snapshot common plan: secretReference', function () {
  const keys = { name: 'secret-name', namespace: 'secret-namespace' };
  const values: Record<string, string> = { 'content.name': 'c', 'object.namespace': 'ns' };
  const fill = (_field: string, template: string): TemplateResolution => {
    const unknown = [...template.matchAll(/\$\{([^}]*)\}/g)]
      .map((match) => match[1]!)
      .filter((key) => !(key in values));
    if (unknown.length > 0) return { unknown, allowed: Object.keys(values) };
    return { value: template.replace(/\$\{([^}]*)\}/g, (_token, key: string) => values[key]!) };
  };
  const cases = [
    { name: 'no templates: no ref', templates: undefined, expected: {} },
    {
      name: 'only one template',
      templates: 'incomplete' as const,
      expected: { error: 'secret-name and secret-namespace must be set together' },
    },
    {
      name: 'both filled',
      templates: { name: 's-${content.name}', namespace: '${object.namespace}' },
      expected: { ref: { name: 's-c', namespace: 'ns' } },
    },
    {
      name: 'an unknown placeholder',
      templates: { name: '${object.name}', namespace: 'ns' },
      expected: {
        error:
          'secret-name: "${object.name}" uses ${object.name}; allowed: ${content.name}, ${object.namespace}',
      },
    },
    {
      name: 'not a namespace name',
      templates: { name: 's', namespace: 'Not_A_Namespace' },
      expected: { error: 'secret-namespace resolves to "Not_A_Namespace", not a namespace name' },
    },
    {
      name: 'not a Secret name',
      templates: { name: 'Bad Name', namespace: 'ns' },
      expected: { error: 'secret-name resolves to "Bad Name", not a Secret name' },
    },
  ];
  for (const { name, templates, expected } of cases) {
    it(name, function () {
      expect(secretReference(templates, keys, fill)).to.deep.equal(expected);
    });
  }

  it("classSecretRef reads the kind's parameters", function () {
    expect(
      plans.classSecretRef({ 'secret-name': 's', 'secret-namespace': 'ns' }, fill),
    ).to.deep.equal({ ref: { name: 's', namespace: 'ns' } });
    expect(plans.classSecretRef({ 'secret-name': 's' }, fill)).to.deep.equal({
      error: 'secret-name and secret-namespace must be set together',
    });
  });
});

describe('snapshot common plan: warnAndRetry', function () {
  it('a Warning, then a retry with its message', function () {
    expect(warnAndRetry('R', 'm')).to.deep.equal({ actions: [warningEvent('R', 'm')], retry: 'm' });
  });
});
