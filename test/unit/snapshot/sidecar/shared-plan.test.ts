import { expect } from 'chai';
import type { KubeObject } from '../../../../src/kube/resource.js';
import {
  annotatedSecretRef,
  contentChangeNeedsSync,
  mayRelease,
  planForeign,
  planReady,
  prefixedName,
  createParameters,
  statusRecordingError,
  withoutReservedParameters,
} from '../../../../src/snapshot/sidecar/shared-plan.js';

const BEING_CREATED = 'example.dev/being-created';
const BEING_DELETED = 'example.dev/being-deleted';
const KEYS = { name: 'example.dev/secret-name', namespace: 'example.dev/secret-namespace' };
const KIND = {
  what: 'example content',
  beingCreated: BEING_CREATED,
  beingDeleted: BEING_DELETED,
  secretAnnotations: KEYS,
  sidecarParameters: new Set(['csi.storage.k8s.io/known']),
  extraMetadata: { name: 'x/name', namespace: 'x/namespace', contentName: 'x/content' },
};

type Content = KubeObject & {
  spec?: { source: string };
  status?: { readyToUse?: boolean; error?: { time?: string; message?: string } };
};

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
    const deleting = (annotations: Record<string, string> = {}): Content =>
      content({ metadata: { name: 'c1', deletionTimestamp: '2026-01-02T03:04:05Z', annotations } });
    const bound = () => false;

    it('never while the content is not being deleted', function () {
      expect(mayRelease(content(), KIND, () => true)).to.equal(false);
    });

    it('at once for an unbound pre-provisioned content', function () {
      expect(mayRelease(deleting({ [BEING_CREATED]: 'yes' }), KIND, () => true)).to.equal(true);
    });

    it('once the snapshot object is being deleted and no create call is in flight', function () {
      expect(mayRelease(deleting(), KIND, bound)).to.equal(false);
      expect(mayRelease(deleting({ [BEING_DELETED]: 'yes' }), KIND, bound)).to.equal(true);
      const both = deleting({ [BEING_DELETED]: 'yes', [BEING_CREATED]: 'yes' });
      expect(mayRelease(both, KIND, bound)).to.equal(false);
    });
  });

  describe('planReady', function () {
    it('removes a being-created annotation that outlived its call, else does nothing', function () {
      const ready = { readyToUse: true };
      const marked = content({
        metadata: { name: 'c1', annotations: { [BEING_CREATED]: 'yes' } },
        status: ready,
      });
      expect(planReady(marked, KIND)).to.deep.equal({ action: 'removeBeingCreated' });
      expect(planReady(content({ status: ready }), KIND)).to.deep.equal({ action: 'upToDate' });
    });

    it('has no plan for a content that is not ready', function () {
      expect(planReady(content(), KIND)).to.equal(undefined);
      expect(planReady(content({ status: { readyToUse: false } }), KIND)).to.equal(undefined);
    });
  });

  describe('withoutReservedParameters', function () {
    it("keeps plain keys and drops the kind's own reserved ones", function () {
      expect(
        withoutReservedParameters({ a: '1', 'csi.storage.k8s.io/known': 'x' }, KIND),
      ).to.deep.equal({ a: '1' });
    });

    it('refuses a reserved key it does not know', function () {
      expect(() => withoutReservedParameters({ 'csi.storage.k8s.io/other': 'x' }, KIND)).to.throw(
        /unknown parameter key "csi.storage.k8s.io\/other"/,
      );
    });
  });

  describe('createParameters', function () {
    const classParameters = { a: '1', 'csi.storage.k8s.io/known': 'x' };
    const ref = { name: 'snap', namespace: 'ns' };

    it("gives the class's parameters without the kind's own keys", function () {
      const off = { extraCreateMetadata: false };
      expect(createParameters(classParameters, KIND, off, ref, 'c1')).to.deep.equal({ a: '1' });
      expect(createParameters(undefined, KIND, off, ref, 'c1')).to.deep.equal({});
    });

    it('adds the names of the snapshot object and the content when asked', function () {
      const on = { extraCreateMetadata: true };
      expect(createParameters(classParameters, KIND, on, ref, 'c1')).to.deep.equal({
        a: '1',
        'x/name': 'snap',
        'x/namespace': 'ns',
        'x/content': 'c1',
      });
      expect(createParameters({}, KIND, on, undefined, 'c1')).to.deep.equal({
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
      expect(annotatedSecretRef(annotated({ [KEYS.name]: 's' }), KIND)).to.equal(undefined);
    });

    it('names the Secret both annotations give', function () {
      const ref = annotatedSecretRef(annotated({ [KEYS.name]: 's', [KEYS.namespace]: 'ns' }), KIND);
      expect(ref).to.deep.equal({ name: 's', namespace: 'ns' });
    });

    it('refuses an empty annotation, naming the content as its kind does', function () {
      expect(() =>
        annotatedSecretRef(annotated({ [KEYS.name]: '', [KEYS.namespace]: 'ns' }), KIND),
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

  describe('statusRecordingError', function () {
    const time = '2026-01-02T03:04:05Z';

    it('records the error at the time given and clears readiness', function () {
      const current = { readyToUse: true };
      expect(statusRecordingError(current, 'boom', time, {})).to.deep.equal({
        readyToUse: false,
        error: { time, message: 'boom' },
      });
      expect(current).to.deep.equal({ readyToUse: true });
    });

    it('can keep readiness', function () {
      const next = statusRecordingError({ readyToUse: true }, 'boom', time, {
        keepReadyToUse: true,
      });
      expect(next?.readyToUse).to.equal(true);
    });

    it('writes nothing when the same message is there already', function () {
      const current = { readyToUse: false, error: { time: 'earlier', message: 'boom' } };
      expect(statusRecordingError(current, 'boom', time, {})).to.equal(undefined);
    });
  });

  describe('contentChangeNeedsSync', function () {
    const withAnnotation = (key: string): Content =>
      content({ metadata: { name: 'c1', resourceVersion: '2', annotations: { [key]: 'yes' } } });

    it("ignores the kind's being-created annotation and the resourceVersion", function () {
      expect(contentChangeNeedsSync(content(), withAnnotation(BEING_CREATED), KIND)).to.equal(
        false,
      );
    });

    it('sees any other annotation', function () {
      expect(contentChangeNeedsSync(content(), withAnnotation('example.dev/other'), KIND)).to.equal(
        true,
      );
    });

    it('ignores status and finalizers but not a status turning ready', function () {
      const failed = content({ status: { readyToUse: false, error: { message: 'x' } } });
      const finalized = content({ metadata: { name: 'c1', finalizers: ['example.dev/f'] } });
      expect(contentChangeNeedsSync(content(), failed, KIND)).to.equal(false);
      expect(contentChangeNeedsSync(content(), finalized, KIND)).to.equal(false);
      expect(
        contentChangeNeedsSync(failed, content({ status: { readyToUse: true } }), KIND),
      ).to.equal(true);
    });

    it('sees a spec change', function () {
      expect(
        contentChangeNeedsSync(content(), content({ spec: { source: 'vol-2' } }), KIND),
      ).to.equal(true);
    });
  });
});
