import { expect } from 'chai';

import { DiskError } from '../../../src/csi/errors.js';
import { paginate } from '../../../src/driver/pagination.js';

const ids = (...names: string[]) => names.map((id) => ({ id }));
const idOf = (e: { id: string }) => e.id;

describe('driver: list pagination', function () {
  it('returns everything, sorted, when max_entries is 0', function () {
    const page = paginate(ids('c', 'a', 'b'), idOf, { maxEntries: 0 });
    expect(page.entries.map(idOf)).to.deep.equal(['a', 'b', 'c']);
    expect(page.nextToken).to.equal(undefined);
  });

  it('pages with a token that resumes after the last entry returned', function () {
    const all = ids('a', 'b', 'c', 'd', 'e');
    const first = paginate(all, idOf, { maxEntries: 2 });
    expect(first.entries.map(idOf)).to.deep.equal(['a', 'b']);
    const second = paginate(all, idOf, { maxEntries: 2, startingToken: first.nextToken });
    expect(second.entries.map(idOf)).to.deep.equal(['c', 'd']);
    const third = paginate(all, idOf, { maxEntries: 2, startingToken: second.nextToken });
    expect(third.entries.map(idOf)).to.deep.equal(['e']);
    expect(third.nextToken).to.equal(undefined);
  });

  it('neither repeats nor skips entries when the last returned one is deleted between pages', function () {
    const first = paginate(ids('a', 'b', 'c'), idOf, { maxEntries: 2 });
    const second = paginate(ids('a', 'c'), idOf, { maxEntries: 2, startingToken: first.nextToken });
    expect(second.entries.map(idOf)).to.deep.equal(['c']);
  });

  it('answers a token it did not issue with ABORTED', function () {
    let error: unknown;
    try {
      paginate(ids('a'), idOf, { maxEntries: 0, startingToken: 'invalid-token' });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(DiskError);
    expect((error as DiskError).code).to.equal('ABORTED');
  });
});
