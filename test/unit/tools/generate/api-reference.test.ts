import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { referencePath, renderApiReference } from '../../../../tools/generate/api-reference.js';

describe('docs/api-reference.md', function () {
  const rendered = renderApiReference();

  it('is what docs/generate-api-reference.ts renders from the zod schemas (not stale)', function () {
    const committed = readFileSync(referencePath, 'utf8');
    expect(committed === rendered, 'docs/api-reference.md is stale: run `make generate`').to.equal(
      true,
    );
  });

  it('documents every field with its description, and the cross-field rules', function () {
    expect(rendered).to.contain('## BackupPolicy');
    expect(rendered).to.contain('## RestoreJob');
    expect(rendered).to.match(
      /\*\*`spec\.schedule`\*\* · string · required {2}\n {2}When to take snapshots/,
    );
    expect(rendered).to.contain(
      '**`spec.snapshotClass.template.forceDelete`** · boolean · optional · default `false`',
    );
    expect(rendered).to.contain('**`spec.selector.matchExpressions[].operator`**');
    expect(rendered).to.contain('Rule: exactly one of selector or pvcNames must be set.');
    expect(rendered).to.contain('Rule: spec is immutable');
    expect(rendered).to.contain('**`status.phase`** · string · optional');
    expect(rendered).to.contain('one of `Pending`, `Restoring`, `Succeeded`, `Failed`');
    expect(rendered).to.contain('| READY/TOTAL |');
  });
});
