import { expect } from 'chai';
import type { KubeObject } from '../../../../src/kube/resource.js';
import {
  planForeign,
  prefixedName,
  ContentKind,
} from '../../../../src/snapshot/sidecar/shared-plan.js';

const BEING_CREATED = 'example.dev/being-created';
const BEING_DELETED = 'example.dev/being-deleted';
const KEYS = { name: 'example.dev/secret-name', namespace: 'example.dev/secret-namespace' };
type Status = {
  handle?: string;
  kept?: string;
  readyToUse?: boolean;
  error?: { time?: string; message?: string };
};
type Content = KubeObject & { spec?: { source: string }; status?: Status };

const KIND = new ContentKind<Status, Content>({
  what: 'example content',
  noun: 'example',
  reasons: {
    creationFailed: 'CreateFailed',
    checkFailed: 'CheckFailed',
    deleteError: 'DeleteError',
  },
  beingCreated: BEING_CREATED,
  beingDeleted: BEING_DELETED,
  secretAnnotations: KEYS,
  sidecarParameters: new Set(['csi.storage.k8s.io/known']),
  extraMetadata: { name: 'x/name', namespace: 'x/namespace', contentName: 'x/content' },
  // in these tests a content whose source is "pre" is pre-provisioned and bound to nothing
  unboundPreProvisioned: (content) => content.spec?.source === 'pre',
  heldFields: ['handle'],
  statusTime: (now) => `at ${now.getTime()}`,
  missingUid: 'example object without a UID',
});

function content(overrides: Partial<Content> = {}): Content {
  return {
    apiVersion: 'example.dev/v1',
    kind: 'Content',
    metadata: { name: 'c1', resourceVersion: '1' },
    spec: { source: 'vol-1' },
    ...overrides,
  };
}

describe('sidecar shared plan', function () {
  describe('planForeign', function () {
    const ours = { spec: { driver: 'd1' } };
    const notOurs = (driver: string) => ({ action: 'notOurs', why: `driver ${driver} is not d1` });

    it('takes a content with a source that names the driver, as its class does', function () {
      expect(planForeign('d1', true, ours, undefined)).to.equal(undefined);
      expect(planForeign('d1', true, ours, { driver: 'd1' })).to.equal(undefined);
    });

    it('leaves one without a source, or where the content or its class names another', function () {
      expect(planForeign('d1', false, ours, undefined)).to.deep.equal(notOurs('d1'));
      expect(planForeign('d1', true, { spec: { driver: 'd2' } }, undefined)).to.deep.equal(
        notOurs('d2'),
      );
      expect(planForeign('d1', true, ours, { driver: 'd2' })).to.deep.equal(notOurs('d1'));
    });
  });

  describe('mayRelease', function () {
    const deleting = (annotations: Record<string, string> = {}, source = 'vol-1'): Content =>
      content({
        metadata: { name: 'c1', deletionTimestamp: '2026-01-02T03:04:05Z', annotations },
        spec: { source },
      });

    it('never while the content is not being deleted', function () {
      expect(KIND.mayRelease(content({ spec: { source: 'pre' } }))).to.equal(false);
    });

    it('at once for an unbound pre-provisioned content', function () {
      expect(KIND.mayRelease(deleting({ [BEING_CREATED]: 'yes' }, 'pre'))).to.equal(true);
    });

    it('once the snapshot object is being deleted and no create call is in flight', function () {
      expect(KIND.mayRelease(deleting())).to.equal(false);
      expect(KIND.mayRelease(deleting({ [BEING_DELETED]: 'yes' }))).to.equal(true);
      const both = deleting({ [BEING_DELETED]: 'yes', [BEING_CREATED]: 'yes' });
      expect(KIND.mayRelease(both)).to.equal(false);
    });
  });

  describe('planReady', function () {
    it('removes a being-created annotation that outlived its call, else does nothing', function () {
      const ready = { readyToUse: true };
      const marked = content({
        metadata: { name: 'c1', annotations: { [BEING_CREATED]: 'yes' } },
        status: ready,
      });
      expect(KIND.planReady(marked)).to.deep.equal({ action: 'removeBeingCreated' });
      expect(KIND.planReady(content({ status: ready }))).to.deep.equal({ action: 'upToDate' });
    });

    it('has no plan for a content that is not ready', function () {
      expect(KIND.planReady(content())).to.equal(undefined);
      expect(KIND.planReady(content({ status: { readyToUse: false } }))).to.equal(undefined);
    });
  });

  describe('withoutReservedParameters', function () {
    it("keeps plain keys and drops the kind's own reserved ones", function () {
      expect(
        KIND.withoutReservedParameters({ a: '1', 'csi.storage.k8s.io/known': 'x' }),
      ).to.deep.equal({ a: '1' });
    });

    it('refuses a reserved key it does not know', function () {
      expect(() => KIND.withoutReservedParameters({ 'csi.storage.k8s.io/other': 'x' })).to.throw(
        /unknown parameter key "csi.storage.k8s.io\/other"/,
      );
    });
  });

  describe('createParameters', function () {
    const classParameters = { a: '1', 'csi.storage.k8s.io/known': 'x' };
    const ref = { name: 'snap', namespace: 'ns' };

    it("gives the class's parameters without the kind's own keys", function () {
      const off = { extraCreateMetadata: false };
      expect(KIND.createParameters(classParameters, off, ref, 'c1')).to.deep.equal({ a: '1' });
      expect(KIND.createParameters(undefined, off, ref, 'c1')).to.deep.equal({});
    });

    it('adds the names of the snapshot object and the content when asked', function () {
      const on = { extraCreateMetadata: true };
      expect(KIND.createParameters(classParameters, on, ref, 'c1')).to.deep.equal({
        a: '1',
        'x/name': 'snap',
        'x/namespace': 'ns',
        'x/content': 'c1',
      });
      expect(KIND.createParameters({}, on, undefined, 'c1')).to.deep.equal({
        'x/name': '',
        'x/namespace': '',
        'x/content': 'c1',
      });
    });
  });

  describe('annotatedSecretRef', function () {
    const annotated = (annotations: Record<string, string>): Content =>
      content({ metadata: { name: 'c1', annotations } });

    it('names no Secret unless both annotations are there', function () {
      expect(KIND.annotatedSecretRef(annotated({ [KEYS.name]: 's' }))).to.equal(undefined);
    });

    it('names the Secret both annotations give', function () {
      const ref = KIND.annotatedSecretRef(annotated({ [KEYS.name]: 's', [KEYS.namespace]: 'ns' }));
      expect(ref).to.deep.equal({ name: 's', namespace: 'ns' });
    });

    it('refuses an empty annotation, naming the content as its kind does', function () {
      expect(() =>
        KIND.annotatedSecretRef(annotated({ [KEYS.name]: '', [KEYS.namespace]: 'ns' })),
      ).to.throw('cannot retrieve secrets for example content c1');
    });
  });

  describe('prefixedName', function () {
    const uid = '3f1c2b7e-1111-2222-3333-444455556666';

    it('keeps the whole UID at -1', function () {
      expect(prefixedName('snapshot', uid, -1)).to.equal(`snapshot-${uid}`);
    });

    it('drops the dashes and cuts the UID to the length asked', function () {
      expect(prefixedName('snap', uid, 10)).to.equal('snap-3f1c2b7e11');
    });
  });

  describe('statusWithError', function () {
    const now = new Date(1000);

    it('records the error at the time, as the kind writes it, and clears readiness', function () {
      const current: Status = { readyToUse: true };
      expect(KIND.statusWithError(current, 'boom', now)).to.deep.equal({
        readyToUse: false,
        error: { time: 'at 1000', message: 'boom' },
      });
      expect(current).to.deep.equal({ readyToUse: true });
    });

    it('can keep readiness', function () {
      const next = KIND.statusWithError({ readyToUse: true }, 'boom', now, {
        keepReadyToUse: true,
      });
      expect(next?.readyToUse).to.equal(true);
    });

    it('writes nothing when the same message is there already', function () {
      const current = { readyToUse: false, error: { time: 'earlier', message: 'boom' } };
      expect(KIND.statusWithError(current, 'boom', now)).to.equal(undefined);
    });
  });

  describe('statusAfterRelease', function () {
    it("forgets the kind's held fields, readiness and error, and keeps the rest", function () {
      const current: Status = {
        handle: 'h1',
        kept: 'k',
        readyToUse: true,
        error: { message: 'refused' },
      };
      expect(KIND.statusAfterRelease(current)).to.deep.equal({ kept: 'k' });
      expect(current.handle).to.equal('h1');
    });

    it('has no status to write for a content without one', function () {
      expect(KIND.statusAfterRelease(undefined)).to.equal(undefined);
    });
  });

  describe('failure messages', function () {
    it("word a failed create or check by the kind's reason and noun", function () {
      expect(KIND.failureMessage('CreateFailed', 'no disk')).to.equal(
        'Failed to create example: no disk',
      );
      expect(KIND.failureMessage('CheckFailed', 'gone')).to.equal(
        'Failed to check and update example content: gone',
      );
      expect(KIND.deleteFailedMessage('in use')).to.equal('Failed to delete example: in use');
    });
  });

  describe('contentChangeNeedsSync', function () {
    const withAnnotation = (key: string): Content =>
      content({ metadata: { name: 'c1', resourceVersion: '2', annotations: { [key]: 'yes' } } });

    it("ignores the kind's being-created annotation and the resourceVersion", function () {
      expect(KIND.changeNeedsSync(content(), withAnnotation(BEING_CREATED))).to.equal(false);
    });

    it('sees any other annotation', function () {
      expect(KIND.changeNeedsSync(content(), withAnnotation('example.dev/other'))).to.equal(true);
    });

    it('ignores status and finalizers but not a status turning ready', function () {
      const failed = content({ status: { readyToUse: false, error: { message: 'x' } } });
      const finalized = content({ metadata: { name: 'c1', finalizers: ['example.dev/f'] } });
      expect(KIND.changeNeedsSync(content(), failed)).to.equal(false);
      expect(KIND.changeNeedsSync(content(), finalized)).to.equal(false);
      expect(KIND.changeNeedsSync(failed, content({ status: { readyToUse: true } }))).to.equal(
        true,
      );
    });

    it('sees a spec change', function () {
      expect(KIND.changeNeedsSync(content(), content({ spec: { source: 'vol-2' } }))).to.equal(
        true,
      );
    });
  });
});
