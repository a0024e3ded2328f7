import { expect } from 'chai';
import { formatBytes, parseQuantity } from '../../../src/api/quantity.js';

describe('provisioner quantities', function () {
  const parsed: Array<[string | number, number]> = [
    ['0', 0],
    ['1', 1],
    ['1Ki', 1024],
    ['10Gi', 10 * 2 ** 30],
    ['1.5Gi', 1.5 * 2 ** 30],
    ['500M', 500e6],
    ['1G', 1e9],
    ['2e9', 2e9],
    ['1E3', 1000],
    ['+3k', 3000],
    ['1500m', 2],
    ['.5Ki', 512],
    ['1.1Gi', Math.ceil(1.1 * 2 ** 30)],
    [1073741824, 1073741824],
  ];
  for (const [quantity, bytes] of parsed) {
    it(`parses ${JSON.stringify(quantity)} as ${bytes} bytes`, function () {
      expect(parseQuantity(quantity)).to.equal(bytes);
    });
  }

  for (const bad of ['', 'Gi', '1Xi', '-1Gi', '1 Gi', 'ten']) {
    it(`rejects ${JSON.stringify(bad)}`, function () {
      expect(() => parseQuantity(bad)).to.throw(/quantity/);
    });
  }

  const formatted: Array<[number, string]> = [
    [0, '0'],
    [1000, '1000'],
    [1024, '1Ki'],
    [1536 * 2 ** 20, '1536Mi'],
    [2 ** 30, '1Gi'],
    [5 * 2 ** 40, '5Ti'],
    [2 ** 30 + 1, '1073741825'],
  ];
  for (const [bytes, quantity] of formatted) {
    it(`formats ${bytes} bytes as ${quantity}, which parses back`, function () {
      expect(formatBytes(bytes)).to.equal(quantity);
      expect(parseQuantity(formatBytes(bytes))).to.equal(bytes);
    });
  }

  it('refuses a fractional or negative byte count', function () {
    expect(() => formatBytes(1.5)).to.throw(/byte count/);
    expect(() => formatBytes(-1)).to.throw(/byte count/);
  });
});
