import { expect } from 'chai';

import { DiskError } from '../../../../../src/csi/errors.js';
import {
  checkName,
  Layout,
  locateId,
  nameProblem,
  ownName,
  qualifiedId,
} from '../../../../../src/driver/backends/local/layout.js';

describe('local backend: names and paths', function () {
  it('accepts the names Kubernetes and csi-sanity use', function () {
    for (const name of [
      'pvc-1b2c3d4e-0000-4000-8000-000000000000',
      'snapshot-abc',
      'sanity-Node-1.2_x',
    ]) {
      expect(nameProblem(name), name).to.equal(undefined);
    }
  });

  it('refuses path-like names with INVALID_ARGUMENT', function () {
    for (const name of ['../etc', '..', '.hidden', 'a/b', '/abs', 'a\\b', 'a b', '', 'ä']) {
      let error: unknown;
      try {
        checkName('volume', name);
      } catch (e) {
        error = e;
      }
      expect(error, name).to.be.instanceOf(DiskError);
      expect((error as DiskError).code, name).to.equal('INVALID_ARGUMENT');
    }
  });

  it('refuses names over 128 bytes and says so', function () {
    expect(nameProblem('a'.repeat(128))).to.equal(undefined);
    expect(() => checkName('snapshot', 'a'.repeat(129))).to.throw(/129 bytes long/);
  });

  it('keeps every file inside its directory under the root', function () {
    const layout = new Layout('/var/lib/snapback');
    expect(layout.diskImage('pvc-1')).to.equal('/var/lib/snapback/disks/pvc-1.img');
    expect(layout.snapshotMeta('s')).to.equal('/var/lib/snapback/snapshots/s.json');
    expect(() => layout.diskImage('../../etc/passwd')).to.throw(/not a valid name/);
    expect(() => layout.diskMeta('x/../../y')).to.throw(/not a valid name/);
  });

  it('reads the node an id names: here, another node, or no object at all', function () {
    expect(qualifiedId('pvc-1', 'node-a')).to.equal('pvc-1@node-a');
    expect(locateId('pvc-1@node-a', 'node-a')).to.deep.equal({ where: 'here', name: 'pvc-1' });
    expect(locateId('pvc-1@node-b', 'node-a')).to.deep.equal({
      where: 'elsewhere',
      node: 'node-b',
    });
    // An id issued before ids named their node is this node's.
    expect(locateId('pvc-1', 'node-a')).to.deep.equal({ where: 'here', name: 'pvc-1' });
    for (const id of ['a@b@c', '../x@node-a', 'x@../node-a', 'x@', '@node-a', '']) {
      expect(locateId(id, 'node-a'), id).to.deep.equal({ where: 'nowhere' });
    }
  });

  it("refuses another node's object with the code asked for, naming both nodes", function () {
    expect(ownName('volume', 'v@node-a', 'node-a', 'FAILED_PRECONDITION', 'delete')).to.equal('v');
    expect(ownName('volume', 'a/b', 'node-a', 'FAILED_PRECONDITION', 'delete')).to.equal(undefined);
    let error: unknown;
    try {
      ownName('snapshot', 's@node-b', 'node-a', 'FAILED_PRECONDITION', 'delete');
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(DiskError);
    expect((error as DiskError).code).to.equal('FAILED_PRECONDITION');
    expect((error as DiskError).message).to.equal(
      'snapshot s@node-b lives on node node-b, not on node node-a that this driver serves: ' +
        'only the driver on node node-b can delete it',
    );
  });
});
