import { expect } from 'chai';
import {
  fieldSelectorMatches,
  labelSelectorMatches,
  labelSelectorToString,
  parseLabelSelector,
} from '../../../src/kube/selectors.js';

describe('label selectors', function () {
  const labels = { app: 'db', tier: 'backend', 'snapback.dev/policy': 'nightly' };

  it('matches matchLabels and every operator as the API server does', function () {
    expect(labelSelectorMatches({}, labels), 'empty selects everything').to.equal(true);
    expect(labelSelectorMatches({ matchLabels: { app: 'db' } }, labels)).to.equal(true);
    expect(labelSelectorMatches({ matchLabels: { app: 'web' } }, labels)).to.equal(false);
    const expression = (operator: string, values?: string[]) => ({
      matchExpressions: [{ key: 'tier', operator, values }],
    });
    expect(labelSelectorMatches(expression('In', ['backend', 'x']), labels)).to.equal(true);
    expect(labelSelectorMatches(expression('NotIn', ['backend']), labels)).to.equal(false);
    expect(
      labelSelectorMatches(
        { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] },
        labels,
      ),
    ).to.equal(true);
    expect(labelSelectorMatches(expression('Exists'), labels)).to.equal(true);
    expect(labelSelectorMatches(expression('DoesNotExist'), labels)).to.equal(false);
    expect(
      labelSelectorMatches(expression('Typo'), labels),
      'unknown operators select nothing',
    ).to.equal(false);
  });

  it('parses and prints the query-string form', function () {
    const parsed = parseLabelSelector(
      'app=db,tier in (backend, cache),!legacy,snapback.dev/policy,env!=prod',
    );
    expect(parsed).to.deep.equal({
      matchLabels: { app: 'db' },
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['backend', 'cache'] },
        { key: 'legacy', operator: 'DoesNotExist' },
        { key: 'snapback.dev/policy', operator: 'Exists' },
        { key: 'env', operator: 'NotIn', values: ['prod'] },
      ],
    });
    expect(labelSelectorMatches(parsed, labels)).to.equal(true);
    expect(labelSelectorToString(parsed)).to.equal(
      'app=db,tier in (backend,cache),!legacy,snapback.dev/policy,env notin (prod)',
    );
    expect(() => parseLabelSelector('a=(b')).to.throw(/invalid label selector/);
  });

  it('matches field selectors on dotted paths', function () {
    const pvc = { metadata: { name: 'p', namespace: 'ns' }, status: { phase: 'Pending' } };
    expect(fieldSelectorMatches('metadata.name=p,status.phase==Pending', pvc)).to.equal(true);
    expect(fieldSelectorMatches('status.phase!=Pending', pvc)).to.equal(false);
    expect(fieldSelectorMatches('spec.volumeName=', pvc), 'a missing field is empty').to.equal(
      true,
    );
  });
});
