/** `make generate`: writes the snapback.dev CRDs under crds/ from the zod schemas. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderGeneratedCrds } from './crd.js';

const crdsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../crds');

for (const [file, content] of renderGeneratedCrds()) {
  writeFileSync(path.join(crdsDir, file), content);
  console.log(`wrote crds/${file}`);
}
