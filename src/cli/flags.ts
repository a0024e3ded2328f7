/**
 * Flags of the snapback commands: each command has one table of its flags, parsed with
 * node:util parseArgs. Values stay strings, as Go's flag package hands them to upstream's
 * sidecars: each command's options function reads and checks them.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { parseGoBool } from '../util/bool.js';

export interface FlagSpec {
  help: string;
  /** A Go-style boolean: bare `--name` is true; `--name=false`, `--name 0` and the like. */
  boolean?: true;
}

/** Flag name (without dashes) -> what it takes. */
export type FlagTable = Readonly<Record<string, FlagSpec>>;

export interface ParsedFlags {
  /** `--help` or `-h` was given. */
  help: boolean;
  values: Record<string, string>;
}

/**
 * Reads `args` against `table`: `--name=value` and `--name value`; an unknown flag, an
 * argument that is not a flag or a flag without its value is an error that names the fix.
 */
export function parseCommandFlags(table: FlagTable, args: string[]): ParsedFlags {
  const options: ParseArgsOptionsConfig = { help: { type: 'boolean', short: 'h' } };
  for (const name of Object.keys(table)) options[name] = { type: 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: withBooleanValues(table, args), options, strict: true });
  } catch (error) {
    throw flagError(table, error as Error & { code?: string });
  }
  const { help, ...values } = parsed.values;
  return { help: help === true, values: values as Record<string, string> };
}

/** Gives every boolean flag an inline value, so that parseArgs reads all flags as strings. */
function withBooleanValues(table: FlagTable, args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--') || arg.includes('=') || !table[arg.slice(2)]?.boolean) {
      out.push(arg);
    } else if (i + 1 < args.length && parseGoBool(args[i + 1]!) !== undefined) {
      out.push(`${arg}=${args[++i]}`);
    } else {
      out.push(`${arg}=true`);
    }
  }
  return out;
}

/** parseArgs' errors, in the words the commands have always used. */
function flagError(table: FlagTable, error: Error & { code?: string }): Error {
  const option = /'(-[^' ]+)/.exec(error.message)?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return unknownFlag(table, (option ?? '').replace(/^-+/, ''));
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new Error(`unexpected argument "${/'(.*)'/.exec(error.message)?.[1] ?? ''}"`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (option && option !== '-h,') {
        return new Error(`${option} needs a value (${option}=<value>)`);
      }
      return new Error('--help takes no value');
    default:
      return error;
  }
}

function unknownFlag(table: FlagTable, name: string): Error {
  return new Error(`unknown flag --${name} (known: --${Object.keys(table).join(', --')})`);
}

/** For options built from values that did not come through parseCommandFlags. */
export function assertKnownFlags(table: FlagTable, values: Record<string, string>): void {
  for (const name of Object.keys(values)) {
    if (!(name in table)) throw unknownFlag(table, name);
  }
}

/** `  --name   help` lines, the names padded to `width`. */
export function flagLines(table: FlagTable, width: number): string[] {
  return Object.entries(table).map(([name, spec]) => `  --${name.padEnd(width)} ${spec.help}`);
}

/** Help texts as a table of string flags. */
export function stringFlags(help: Readonly<Record<string, string>>): FlagTable {
  return Object.fromEntries(Object.entries(help).map(([name, text]) => [name, { help: text }]));
}
