import { expect } from 'chai';
import path from 'node:path';

import { generatedDir, staleGeneratedFiles } from '../../../../tools/generate/codegen.js';
import { repoRoot, tool } from '../../../support/tools.js';

describe('csi: generated types in src/gen/csi', function () {
  it('are not stale: make generate would write exactly the committed files', function () {
    const stale = staleGeneratedFiles(tool('CSI_PROTO'), path.join(repoRoot, generatedDir));
    expect(stale, `stale files under ${generatedDir}: run make generate`).to.deep.equal([]);
  });
});
