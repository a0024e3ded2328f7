import { expect } from 'chai';
import { parseFeatureGates } from '../../../src/provisioner/feature-gates.js';

describe('provisioner --feature-gates', function () {
  const accepted: Array<[string | undefined, boolean]> = [
    [undefined, false],
    ['', false],
    ['CrossNamespaceVolumeDataSource=true', true],
    ['CrossNamespaceVolumeDataSource=false', false],
    [' CrossNamespaceVolumeDataSource=true ,', true],
  ];
  for (const [value, expected] of accepted) {
    it(`"${value}": CrossNamespaceVolumeDataSource ${expected ? 'on' : 'off'}`, function () {
      expect(parseFeatureGates(value).CrossNamespaceVolumeDataSource).to.equal(expected);
    });
  }

  const refused: Array<[string, RegExp]> = [
    ['Unknown=true', /unknown feature gate Unknown \(known: CrossNamespaceVolumeDataSource\)/],
    ['CrossNamespaceVolumeDataSource=yes', /takes Name=true\|false pairs/],
    ['CrossNamespaceVolumeDataSource', /takes Name=true\|false pairs/],
  ];
  for (const [value, message] of refused) {
    it(`refuses "${value}"`, function () {
      expect(() => parseFeatureGates(value)).to.throw(message);
    });
  }
});
