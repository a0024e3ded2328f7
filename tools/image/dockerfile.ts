import { readFileSync } from 'node:fs';

/**
 * Reads the final stage of a Dockerfile, so that `make image` builds what the Dockerfile
 * describes instead of a second description of the same image.
 */

export interface FinalStage {
  /** The stage's base image, e.g. `node:24-bookworm-slim`. */
  from: string;
  user?: string;
  /** In order of first appearance; a later value for a name replaces the earlier one in place. */
  env: [string, string][];
  workdir?: string;
  entrypoint?: string[];
  cmd?: string[];
  /** The packages the stage's RUN lines pass to `apt-get install`. */
  aptPackages: string[];
}

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Instructions with continuation lines joined; comments and blank lines dropped. */
function instructions(text: string): Instruction[] {
  const result: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line) || (line.trim() === '' && pending === undefined)) return;
    const continued = line.endsWith('\\');
    const body = continued ? line.slice(0, -1) : line;
    pending = pending
      ? { text: `${pending.text} ${body.trim()}`, line: pending.line }
      : { text: body.trim(), line: index + 1 };
    if (continued) return;
    const match = /^(\S+)\s*(.*)$/.exec(pending.text);
    if (match)
      result.push({ keyword: match[1]!.toUpperCase(), args: match[2]!, line: pending.line });
    pending = undefined;
  });
  return result;
}

/** ENTRYPOINT and CMD: the JSON exec form, or the shell form run by /bin/sh -c. */
function command(instruction: Instruction): string[] {
  const args = instruction.args.trim();
  if (args.startsWith('[')) {
    const parsed: unknown = JSON.parse(args);
    if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) {
      throw new Error(
        `Dockerfile line ${instruction.line}: ${instruction.keyword} is not a JSON array of strings`,
      );
    }
    return parsed;
  }
  return ['/bin/sh', '-c', args];
}

const unquote = (value: string) => value.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');

/** `ENV a=1 b="two words"` and the legacy `ENV name value`. */
function envPairs(instruction: Instruction): [string, string][] {
  const args = instruction.args.trim();
  if (!/^[^\s=]+=/.test(args)) {
    const match = /^(\S+)\s+(.*)$/.exec(args);
    if (!match)
      throw new Error(`Dockerfile line ${instruction.line}: ENV needs a name and a value`);
    return [[match[1]!, unquote(match[2]!)]];
  }
  const pairs: [string, string][] = [];
  for (const match of args.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) {
    pairs.push([match[1]!, unquote(match[2]!)]);
  }
  return pairs;
}

function aptInstalls(run: string): string[] {
  const packages: string[] = [];
  for (const match of run.matchAll(/apt-get\s+install\s+([^;&|]*)/g)) {
    packages.push(...match[1]!.split(/\s+/).filter((word) => word !== '' && !word.startsWith('-')));
  }
  return packages;
}

export function parseFinalStage(text: string): FinalStage {
  const all = instructions(text);
  const lastFrom = all.map((instruction) => instruction.keyword).lastIndexOf('FROM');
  if (lastFrom < 0) throw new Error('the Dockerfile has no FROM');
  const from = all[lastFrom]!.args.split(/\s+/).find((word) => !word.startsWith('--'));
  if (!from) throw new Error(`Dockerfile line ${all[lastFrom]!.line}: FROM names no image`);
  const stage: FinalStage = { from, env: [], aptPackages: [] };
  for (const instruction of all.slice(lastFrom + 1)) {
    switch (instruction.keyword) {
      case 'USER':
        stage.user = instruction.args.trim();
        break;
      case 'ENV':
        for (const [name, value] of envPairs(instruction)) {
          const existing = stage.env.find(([set]) => set === name);
          if (existing) existing[1] = value;
          else stage.env.push([name, value]);
        }
        break;
      case 'WORKDIR': {
        const dir = instruction.args.trim();
        stage.workdir = dir.startsWith('/') ? dir : `${stage.workdir ?? ''}/${dir}`;
        break;
      }
      case 'ENTRYPOINT':
        stage.entrypoint = command(instruction);
        break;
      case 'CMD':
        stage.cmd = command(instruction);
        break;
      case 'RUN':
        stage.aptPackages.push(...aptInstalls(instruction.args));
        break;
    }
  }
  return stage;
}

export function readFinalStage(dockerfile: string): FinalStage {
  return parseFinalStage(readFileSync(dockerfile, 'utf8'));
}
