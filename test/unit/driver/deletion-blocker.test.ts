import { expect } from 'chai';

import { snapshotDeletionBlocker } from '../../../src/driver/backend.js';

describe('driver: the forceDelete rule', function () {
  it('lets a snapshot without dependents go, whatever forceDelete says', function () {
    expect(snapshotDeletionBlocker('s', false, [])).to.equal(undefined);
    expect(snapshotDeletionBlocker('s', true, [])).to.equal(undefined);
  });

  it('refuses a snapshot with dependents created without forceDelete, naming them', function () {
    const message = snapshotDeletionBlocker('s', false, [
      { id: 'disk-1', creating: false },
      { id: 'disk-2', creating: false },
    ]);
    expect(message).to.match(/disk-1, disk-2/);
    expect(message).to.match(/forceDelete/);
  });

  it('lets a forceDelete snapshot go despite ready dependents', function () {
    expect(snapshotDeletionBlocker('s', true, [{ id: 'disk-1', creating: false }])).to.equal(
      undefined,
    );
  });

  it('refuses while a dependent is still being created, even with forceDelete', function () {
    const message = snapshotDeletionBlocker('s', true, [
      { id: 'ready', creating: false },
      { id: 'filling', creating: true },
    ]);
    expect(message).to.match(/being created from it: filling/);
  });
});
