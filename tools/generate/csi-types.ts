/**
 * `make generate`: regenerates the CSI types in src/gen/csi from csi.proto. The proto path is
 * the first argument, else $SNAPBACK_CSI_PROTO, else the one `make tools` downloaded.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { generateCsiTypes, generatedDir } from './codegen.js';
import { csiProtoEnv } from '../../src/csi/proto.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function toolsProto(): string {
  const out = execFileSync('bash', [path.join(repoRoot, 'tools/build.sh'), 'paths'], {
    encoding: 'utf8',
  });
  const line = out.split('\n').find((l) => l.startsWith('CSI_PROTO='));
  if (!line) throw new Error('tools/build.sh paths printed no CSI_PROTO');
  return line.slice('CSI_PROTO='.length);
}

const proto = process.argv[2] ?? process.env[csiProtoEnv] ?? toolsProto();
const out = path.join(repoRoot, generatedDir);
rmSync(out, { recursive: true, force: true });
generateCsiTypes(proto, out);
console.log(`generated ${generatedDir} from ${proto}`);
