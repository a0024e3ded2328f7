import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../../support/tools.js';

/**
 * CEL's reserved words. A property of that name must be written `__word__` in a rule (as
 * upstream's VolumeSnapshotContent CRD writes `self.__namespace__`): API servers before 1.32
 * refuse the CRD otherwise, and the chart claims versions before that.
 */
const RESERVED = [
  'in',
  'as',
  'break',
  'const',
  'continue',
  'else',
  'for',
  'function',
  'if',
  'import',
  'let',
  'loop',
  'namespace',
  'package',
  'return',
  'var',
  'void',
  'while',
];
/** Literals and operators in expression position; as a property they need escaping too. */
const LANGUAGE_WORDS = new Set(['in', 'true', 'false', 'null']);

/** The expression with string literals (quoted, triple-quoted, raw or not) blanked out. */
function withoutStrings(expression: string): string {
  let out = '';
  let i = 0;
  while (i < expression.length) {
    const quote = expression[i];
    if (quote !== "'" && quote !== '"') {
      out += expression[i++];
      continue;
    }
    const raw = /[rR]$/.test(out);
    const delimiter = expression.startsWith(quote.repeat(3), i) ? quote.repeat(3) : quote;
    i += delimiter.length;
    while (i < expression.length && !expression.startsWith(delimiter, i)) {
      i += !raw && expression[i] === '\\' ? 2 : 1;
    }
    i += delimiter.length;
    out += ' ';
  }
  return out;
}

/** Reserved words a CEL expression uses as an identifier or a property, unescaped. */
function unescapedReservedWords(expression: string): string[] {
  const found: string[] = [];
  const code = withoutStrings(expression);
  for (const match of code.matchAll(/(\.\s*)?\b([A-Za-z_][A-Za-z0-9_]*)\b/g)) {
    const word = match[2]!;
    const isProperty = match[1] !== undefined;
    if (
      isProperty
        ? RESERVED.includes(word) || LANGUAGE_WORDS.has(word)
        : RESERVED.includes(word) && !LANGUAGE_WORDS.has(word)
    ) {
      found.push(isProperty ? `.${word}` : word);
    }
  }
  return found;
}

interface Validation {
  rule: string;
  messageExpression?: string;
}

function validationsIn(node: unknown, at: string, out: { at: string; v: Validation }[]): void {
  if (Array.isArray(node)) {
    node.forEach((item, index) => validationsIn(item, `${at}[${index}]`, out));
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
    if (key === 'x-kubernetes-validations' && Array.isArray(value)) {
      for (const v of value as Validation[]) out.push({ at, v });
    } else {
      validationsIn(value, `${at}.${key}`, out);
    }
  }
}

describe('api: CEL rules in crds/ escape reserved words', function () {
  it('finds reserved words as properties and identifiers, never inside strings', function () {
    expect(unescapedReservedWords('has(self.name) && has(self.namespace)')).to.deep.equal([
      '.namespace',
    ]);
    expect(unescapedReservedWords('self.spec.if == 1 || self. while > 2')).to.deep.equal([
      '.if',
      '.while',
    ]);
    expect(unescapedReservedWords('self.all(var, var > 0)')).to.deep.equal(['var', 'var']);
    expect(unescapedReservedWords('has(self.name) && has(self.__namespace__)')).to.deep.equal([]);
    expect(
      unescapedReservedWords(
        "self.operator in ['In', 'namespace'] && !('for' in self.parameters) && self.x == \"let's\"",
      ),
    ).to.deep.equal([]);
    expect(unescapedReservedWords("self.matches(r'\\.namespace') && self.y == true")).to.deep.equal(
      [],
    );
  });

  it('holds for every rule and messageExpression of every CRD', function () {
    const dir = path.join(repoRoot, 'crds');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).to.be.at.least(5);
    const problems: string[] = [];
    let rules = 0;
    for (const file of files) {
      for (const doc of parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))) {
        const found: { at: string; v: Validation }[] = [];
        validationsIn(doc.toJS(), '', found);
        for (const { at, v } of found) {
          rules++;
          for (const expression of [v.rule, v.messageExpression]) {
            if (expression === undefined) continue;
            const words = unescapedReservedWords(expression);
            if (words.length > 0) {
              problems.push(`${file} ${at}: ${words.join(', ')} in ${JSON.stringify(expression)}`);
            }
          }
        }
      }
    }
    expect(rules, 'CEL rules found').to.be.greaterThan(10);
    expect(problems, 'write a reserved property as __word__').to.deep.equal([]);
  });
});
