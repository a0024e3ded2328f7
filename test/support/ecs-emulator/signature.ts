import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Server-side verification of Alibaba Cloud OpenAPI request signatures: V3 `ACS3-HMAC-SHA256`
 * (what @alicloud/openapi-core signs with by default) and the legacy RPC HMAC-SHA1 scheme
 * (`signatureAlgorithm: 'v2'`). Both are built from the published algorithm, so a client that
 * passes here signs the way the real gateway expects.
 */

export interface SignedRequest {
  method: string;
  /** The path without the query, e.g. `/`. */
  path: string;
  /** Decoded query parameters. */
  query: Record<string, string>;
  /** Header names in lower case, as node:http delivers them. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export type SignatureCheck =
  { ok: true; accessKeyId: string } | { ok: false; code: SignatureErrorCode; message: string };

export type SignatureErrorCode =
  | 'IncompleteSignature'
  | 'SignatureDoesNotMatch'
  | 'InvalidAccessKeyId.NotFound'
  | 'InvalidSecurityToken.Mismatch';

/** RFC 3986 percent-encoding, as the signing algorithms prescribe. */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Splits a raw query string without URLSearchParams' `+`-as-space rule, which signers do not use. */
export function parseQuery(rawQuery: string): Record<string, string> {
  const query: Record<string, string> = {};
  for (const pair of rawQuery.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
    query[key] = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1));
  }
  return query;
}

function header(request: SignedRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function canonicalQueryString(query: Record<string, string>): string {
  return Object.keys(query)
    .sort()
    .map((key) => `${percentEncode(key)}=${percentEncode(query[key] ?? '')}`)
    .join('&');
}

/** The V3 canonical request over the headers the client said it signed. */
export function canonicalRequestV3(request: SignedRequest, signedHeaders: string[]): string {
  const canonicalHeaders = signedHeaders
    .map((name) => `${name}:${(header(request, name) ?? '').trim()}\n`)
    .join('');
  return [
    request.method.toUpperCase(),
    request.path || '/',
    canonicalQueryString(request.query),
    canonicalHeaders,
    signedHeaders.join(';'),
    sha256Hex(request.body),
  ].join('\n');
}

export function stringToSignV3(canonicalRequest: string): string {
  return `ACS3-HMAC-SHA256\n${sha256Hex(canonicalRequest)}`;
}

export function signV3(secret: string, stringToSign: string): string {
  return createHmac('sha256', secret).update(stringToSign).digest('hex');
}

export function stringToSignV2(method: string, query: Record<string, string>): string {
  const params = { ...query };
  delete params.Signature;
  return `${method.toUpperCase()}&${percentEncode('/')}&${percentEncode(canonicalQueryString(params))}`;
}

export function signV2(secret: string, stringToSign: string): string {
  return createHmac('sha1', `${secret}&`).update(stringToSign).digest('base64');
}

export interface KnownCredential {
  accessKeySecret: string;
  /** When set, requests must carry this STS token. */
  securityToken?: string;
}

/** Headers that must be covered by a V3 signature, so none can be altered in flight. */
function mustBeSigned(name: string): boolean {
  return name === 'host' || name === 'content-type' || name.startsWith('x-acs-');
}

export function verifyV3(
  request: SignedRequest,
  lookup: (accessKeyId: string) => KnownCredential | undefined,
): SignatureCheck {
  const authorization = header(request, 'authorization') ?? '';
  const match =
    /^ACS3-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)$/.exec(
      authorization.trim(),
    );
  if (!match) {
    return {
      ok: false,
      code: 'IncompleteSignature',
      message: 'The Authorization header is missing or is not an ACS3-HMAC-SHA256 signature.',
    };
  }
  const [, accessKeyId = '', signedList = '', signature = ''] = match;
  const signedHeaders = signedList.split(';');
  const unsigned = Object.keys(request.headers).filter(
    (name) => mustBeSigned(name) && !signedHeaders.includes(name),
  );
  if (unsigned.length > 0 || !signedHeaders.includes('host')) {
    return {
      ok: false,
      code: 'IncompleteSignature',
      message: `The request signature does not cover the headers: ${[...unsigned, ...(signedHeaders.includes('host') ? [] : ['host'])].join(', ')}.`,
    };
  }
  const payloadHash = header(request, 'x-acs-content-sha256');
  if (payloadHash !== undefined && payloadHash !== sha256Hex(request.body)) {
    return {
      ok: false,
      code: 'IncompleteSignature',
      message: 'The x-acs-content-sha256 header does not match the request body.',
    };
  }
  const known = lookup(accessKeyId);
  if (!known) {
    return {
      ok: false,
      code: 'InvalidAccessKeyId.NotFound',
      message: 'Specified access key is not found.',
    };
  }
  const tokenCheck = checkSecurityToken(known, header(request, 'x-acs-security-token'));
  if (tokenCheck) return tokenCheck;
  const stringToSign = stringToSignV3(canonicalRequestV3(request, signedHeaders));
  if (!sameText(signV3(known.accessKeySecret, stringToSign), signature)) {
    return {
      ok: false,
      code: 'SignatureDoesNotMatch',
      message: `Specified signature is not matched with our calculation. server string to sign is:${stringToSign}`,
    };
  }
  return { ok: true, accessKeyId };
}

export function verifyV2(
  request: SignedRequest,
  lookup: (accessKeyId: string) => KnownCredential | undefined,
): SignatureCheck {
  const { Signature: signature, AccessKeyId: accessKeyId, SignatureMethod: method } = request.query;
  if (!signature || !accessKeyId || method !== 'HMAC-SHA1') {
    return {
      ok: false,
      code: 'IncompleteSignature',
      message: 'The request carries no complete HMAC-SHA1 signature.',
    };
  }
  const known = lookup(accessKeyId);
  if (!known) {
    return {
      ok: false,
      code: 'InvalidAccessKeyId.NotFound',
      message: 'Specified access key is not found.',
    };
  }
  const tokenCheck = checkSecurityToken(known, request.query.SecurityToken);
  if (tokenCheck) return tokenCheck;
  const stringToSign = stringToSignV2(request.method, request.query);
  if (!sameText(signV2(known.accessKeySecret, stringToSign), signature)) {
    return {
      ok: false,
      code: 'SignatureDoesNotMatch',
      message: `Specified signature is not matched with our calculation. server string to sign is:${stringToSign}`,
    };
  }
  return { ok: true, accessKeyId };
}

function checkSecurityToken(
  known: KnownCredential,
  presented: string | undefined,
): SignatureCheck | undefined {
  if (known.securityToken === undefined) return undefined;
  if (presented !== undefined && sameText(presented, known.securityToken)) return undefined;
  return {
    ok: false,
    code: 'InvalidSecurityToken.Mismatch',
    message: 'The security token does not match the access key.',
  };
}

/** The request's timestamp, whichever scheme signed it. */
export function requestTimestamp(request: SignedRequest): string | undefined {
  return header(request, 'x-acs-date') ?? request.query.Timestamp;
}

export function requestNonce(request: SignedRequest): string | undefined {
  return header(request, 'x-acs-signature-nonce') ?? request.query.SignatureNonce;
}

export function isV3(request: SignedRequest): boolean {
  return header(request, 'authorization') !== undefined;
}
