/**
 * Cross-field rules written once and enforced twice: the API server evaluates the CEL
 * expression (`x-kubernetes-validations` in the generated CRD) and zod evaluates `check`
 * (controllers validate specs with the same schema), so both reject the same objects with
 * the same message.
 */
import type { z } from 'zod';

export interface ValidationRule<T> {
  /** CEL over `self` (and `oldSelf` for a transition rule). */
  rule: string;
  /** Names the offending field(s); shown by the API server and by zod. */
  message: string;
  /** Where the API server reports the failure, relative to the value, e.g. `.parameters`. */
  fieldPath?: string;
  /** The same predicate in TypeScript; absent only for transition rules (need `oldSelf`). */
  check?: (value: T) => boolean;
}

/** The CEL rules as the CRD schema carries them. */
export interface CelValidation {
  rule: string;
  message: string;
  fieldPath?: string;
}

export const VALIDATIONS_KEY = 'x-kubernetes-validations';

function zodPath(fieldPath: string | undefined): string[] {
  return fieldPath ? fieldPath.split('.').filter((segment) => segment !== '') : [];
}

/** Attaches rules to a schema: a zod refinement plus the CEL metadata for the generator. */
export function withRules<S extends z.ZodType>(schema: S, rules: ValidationRule<z.output<S>>[]): S {
  for (const { rule, message } of rules) {
    if (message.includes('\n') || rule.trim() === '') {
      throw new Error(`malformed validation rule ${JSON.stringify({ rule, message })}`);
    }
  }
  const checked = schema.superRefine((value, ctx) => {
    for (const { check, message, fieldPath } of rules) {
      if (check && !check(value)) {
        ctx.addIssue({ code: 'custom', message, path: zodPath(fieldPath), input: value });
      }
    }
  });
  const validations: CelValidation[] = rules.map(({ rule, message, fieldPath }) =>
    fieldPath ? { rule, message, fieldPath } : { rule, message },
  );
  return checked.meta({ [VALIDATIONS_KEY]: validations }) as S;
}

/** A CEL string literal for a regular expression from formats.ts (no quotes or escapes). */
export function celRegex(pattern: string): string {
  if (/['\\]/.test(pattern)) {
    throw new Error(`pattern ${pattern} would need escaping inside a CEL string literal`);
  }
  return `'${pattern}'`;
}

/** Exactly one of the named optional fields is set. */
export function exactlyOneOf<T extends object>(
  fields: readonly (keyof T & string)[],
  message: string,
): ValidationRule<T> {
  return {
    rule: `${fields.map((field) => `(has(self.${field}) ? 1 : 0)`).join(' + ')} == 1`,
    message,
    check: (value) => fields.filter((field) => value[field] !== undefined).length === 1,
  };
}

/** A string matches a pattern (enforced with CEL so the message can explain the format). */
export function matches(pattern: string, message: string): ValidationRule<string> {
  const regex = new RegExp(pattern);
  return {
    rule: `self.matches(${celRegex(pattern)})`,
    message,
    check: (value) => regex.test(value),
  };
}

/** Every key of a map matches a pattern. */
export function keysMatch(
  pattern: string,
  message: string,
): ValidationRule<Record<string, unknown>> {
  const regex = new RegExp(pattern);
  return {
    rule: `self.all(key, key.matches(${celRegex(pattern)}))`,
    message,
    check: (value) => Object.keys(value).every((key) => regex.test(key)),
  };
}

/** A value never changes once created (a transition rule: only the API server checks it). */
export function immutable(message: string): ValidationRule<unknown> {
  return { rule: 'self == oldSelf', message };
}

/** The elements of a list are unique (what `x-kubernetes-list-type: set` enforces). */
export function uniqueItems<T>(items: readonly T[]): boolean {
  return new Set(items).size === items.length;
}

/** The elements of a list have unique keys (what `x-kubernetes-list-type: map` enforces). */
export function uniqueKeys<T>(items: readonly T[], key: (item: T) => unknown): boolean {
  return new Set(items.map(key)).size === items.length;
}
