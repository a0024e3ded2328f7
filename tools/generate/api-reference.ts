/**
 * Writes docs/api-reference.md from the zod schemas in src/api/, through the same zod -> OpenAPI
 * conversion that generates the CRDs, so the reference says exactly what `kubectl explain` and
 * the API server say. test/unit/docs/api-reference.test.ts fails when the file is stale.
 *
 *   node --import tsx/esm tools/generate/api-reference.ts
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KIND_DEFINITIONS, toStructuralSchema } from './crd.js';
import type { JSONSchemaProps, KindDefinition } from './crd.js';
import { VALIDATIONS_KEY } from '../../src/api/rules.js';
import type { CelValidation } from '../../src/api/rules.js';
import {
  ANNOTATION_RUN_NOW,
  API_VERSION,
  CATEGORY,
  LABEL_POLICY,
  LABEL_PVC,
} from '../../src/api/v1alpha1.js';

export const referencePath = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../docs/api-reference.md',
);

/** A one-line type, in the spelling `kubectl explain` users know. */
function typeOf(node: JSONSchemaProps): string {
  if (node['x-kubernetes-int-or-string'] === true) return 'integer or string';
  if (node.type === 'array') return `[]${node.items ? typeOf(node.items) : 'any'}`;
  if (node.type === 'object' && node.additionalProperties) {
    return `map[string]${typeOf(node.additionalProperties)}`;
  }
  if (node.type === 'string' && node.format === 'date-time') return 'string (RFC 3339 time)';
  return node.type ?? 'any';
}

function constraintsOf(node: JSONSchemaProps): string[] {
  const out: string[] = [];
  if (Array.isArray(node.enum)) {
    out.push(`one of ${node.enum.map((value) => `\`${String(value)}\``).join(', ')}`);
  }
  const bounds: [keyword: string, label: string, unit: string][] = [
    ['minimum', 'minimum', ''],
    ['maximum', 'maximum', ''],
    ['minLength', 'at least', 'character'],
    ['maxLength', 'at most', 'character'],
    ['minItems', 'at least', 'item'],
    ['maxItems', 'at most', 'item'],
    ['maxProperties', 'at most', 'entry'],
  ];
  for (const [keyword, label, unit] of bounds) {
    const value = node[keyword];
    if (typeof value !== 'number') continue;
    const noun = unit === '' ? '' : ` ${value === 1 ? unit : unit.replace(/y$/, 'ie') + 's'}`;
    out.push(`${label} ${value}${noun}`);
  }
  return out;
}

/** A sentence: the text with one final period. */
const sentence = (text: string): string => (text.endsWith('.') ? text : `${text}.`);

function rulesOf(node: JSONSchemaProps): string[] {
  const validations = (node[VALIDATIONS_KEY] as CelValidation[] | undefined) ?? [];
  return validations.map((validation) => validation.message);
}

/** One list entry per field, depth first, in the schema's order. */
function renderFields(node: JSONSchemaProps, prefix: string, lines: string[]): void {
  const required = new Set(node.required ?? []);
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const fieldPath = `${prefix}.${name}`;
    const facts = [typeOf(child), required.has(name) ? 'required' : 'optional'];
    if (child.default !== undefined) facts.push(`default \`${JSON.stringify(child.default)}\``);
    lines.push(`- **\`${fieldPath}\`** · ${facts.join(' · ')}  `);
    if (child.description) lines.push(`  ${child.description}`);
    const constraints = constraintsOf(child);
    if (constraints.length > 0)
      lines.push(`  <br>Constraints: ${sentence(constraints.join('; '))}`);
    for (const rule of rulesOf(child)) lines.push(`  <br>Rule: ${sentence(rule)}`);
    const items = child.type === 'array' ? child.items : undefined;
    if (items) {
      const itemConstraints = constraintsOf(items);
      if (itemConstraints.length > 0) {
        lines.push(`  <br>Each item: ${sentence(itemConstraints.join('; '))}`);
      }
      for (const rule of rulesOf(items)) lines.push(`  <br>Rule (each item): ${sentence(rule)}`);
    }
    if (child.properties) renderFields(child, fieldPath, lines);
    if (items?.properties) renderFields(items, `${fieldPath}[]`, lines);
  }
}

function renderKind(definition: KindDefinition): string {
  const lines: string[] = [];
  lines.push(`## ${definition.kind}`, '');
  lines.push(
    `\`apiVersion: ${API_VERSION}\` · namespaced · short name ${definition.shortNames.map((n) => `\`${n}\``).join(', ')} · category \`${CATEGORY}\``,
    '',
  );
  lines.push(definition.description, '');
  lines.push('`kubectl get` columns:', '');
  lines.push('| Column | Shows |', '| --- | --- |');
  for (const column of definition.printerColumns) {
    lines.push(`| ${column.name.toUpperCase()} | ${column.description} |`);
  }
  lines.push('');
  for (const part of ['spec', 'status'] as const) {
    const schema = toStructuralSchema(definition[part], part);
    lines.push(`### ${part}`, '');
    if (schema.description) lines.push(schema.description, '');
    const rules = rulesOf(schema);
    for (const rule of rules) lines.push(`- Rule: ${sentence(rule)}`);
    if (rules.length > 0) lines.push('');
    renderFields(schema, part, lines);
    lines.push('');
  }
  return lines.join('\n');
}

export function renderApiReference(): string {
  const sections = [
    '# API reference',
    '',
    '<!-- Generated by tools/generate/api-reference.ts from the zod schemas in src/api/. Do not edit. -->',
    '',
    `snapback serves two kinds in the API group \`${API_VERSION.split('/')[0]}\`, version \`${API_VERSION.split('/')[1]}\`. ` +
      'Every rule below is enforced by the API server (the CRD schema and its CEL rules) and again by the controllers.',
    '',
    'Labels and annotations snapback reads or writes:',
    '',
    `- \`${LABEL_POLICY}\`: on every VolumeSnapshot a BackupPolicy creates, the policy's name.`,
    `- \`${LABEL_PVC}\`: on every VolumeSnapshot a BackupPolicy creates, the name of its PVC.`,
    `- \`${ANNOTATION_RUN_NOW}\`: on a BackupPolicy, any new value asks for one run now.`,
    '',
    ...KIND_DEFINITIONS.map(renderKind),
  ];
  return `${sections.join('\n').trimEnd()}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(referencePath, renderApiReference());
  console.log(`wrote ${path.relative(process.cwd(), referencePath)}`);
}
