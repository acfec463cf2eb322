// The OpenAPI 3.1 document of the admin API, generated from the route declarations and their
// zod schemas (zod's own JSON Schema output, draft 2020-12, which OpenAPI 3.1 uses as is).
import { z } from 'zod';
import type { AdminRoute } from './admin-route.ts';
import { problemSchema } from './problem.ts';
import { SELF_RESOURCE } from './authenticate-admin.ts';

export const API_PREFIX = '/admin/api/v1';

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): JsonSchema[] {
  if (!schema) return [];
  const object = jsonSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
  const required = new Set(object.required ?? []);
  return Object.entries(object.properties ?? {}).map(([name, s]) => {
    const { description, ...rest } = s as { description?: string };
    return { name, in: where, required: where === 'path' || required.has(name), ...(description ? { description } : {}), schema: rest };
  });
}

const PROBLEM_REF = { $ref: '#/components/schemas/Problem' };
const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: PROBLEM_REF } } });

/** The responses every operation may give besides its own. */
function commonResponses(route: AdminRoute): Record<string, unknown> {
  const out: Record<string, unknown> = {
    401: problem('No valid admin access token.'),
    403: problem('The token lacks the scope this operation needs.'),
    429: problem('Too many requests from this address.'),
    503: problem('The database is unavailable; retry later.'),
  };
  out[400] = problem('The request failed validation; `errors` lists each field.');
  if (route.body) out[413] = problem('The body is too large.');
  if (route.method !== 'get') out[415] = problem(route.body ? 'The body is not JSON.' : 'This operation takes no body.');
  if (route.params) out[404] = problem('No such object.');
  if (route.method === 'put' || route.method === 'patch' || route.method === 'delete') out[412] = problem('If-Match names an outdated ETag.');
  return out;
}

export function openApiDocument(routes: readonly AdminRoute[], options: { issuer: string; version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const responses: Record<string, unknown> = commonResponses(route);
    for (const [status, spec] of Object.entries(route.responses)) {
      const type = spec.contentType ?? 'application/json';
      const problemLike = Number(status) >= 400;
      if (spec.contentTypes) {
        responses[status] = { description: spec.description, content: Object.fromEntries(spec.contentTypes.map((t) => [t, { schema: { type: 'string' } }])) };
        continue;
      }
      responses[status] = {
        description: spec.description,
        ...(spec.schema || problemLike ? { content: { [problemLike ? 'application/problem+json' : type]: { schema: spec.schema && !problemLike ? jsonSchema(spec.schema, 'output') : problemLike ? PROBLEM_REF : {} } } } : spec.contentType ? { content: { [type]: { schema: { type: 'string' } } } } : {}),
        ...(Number(status) < 300 && (route.method === 'get' || route.method === 'put' || route.method === 'patch') && spec.schema ? { headers: { ETag: { description: 'The entity tag to send back in If-Match.', schema: { type: 'string' } } } } : {}),
      };
    }
    const operation: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: [route.tag],
      security: [{ bearer: route.resource === SELF_RESOURCE ? [] : [`admin:${route.access}`, `admin:${route.resource}:${route.access}`] }],
      'x-keybridge-scope': { resource: route.resource, access: route.access },
      parameters: [
        ...parameters(route.params, 'path'),
        ...parameters(route.query, 'query'),
        ...(route.method === 'put' || route.method === 'patch' || route.method === 'delete' ? [{ name: 'If-Match', in: 'header', required: false, description: 'The ETag read last; the write is refused (412) if the object changed since.', schema: { type: 'string' } }] : []),
      ],
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } } } : {}),
      responses,
    };
    (paths[`${API_PREFIX}${route.path}`] ??= {})[route.method] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Keybridge admin API',
      version: options.version,
      description:
        'Manage a Keybridge broker live: users, groups, clients, connectors, SAML service providers, sessions, audit, keys. ' +
        'Authenticate with a Keybridge access token (client_credentials with admin scopes, or an administrator signed in to the admin console). ' +
        'Errors are RFC 9457 problem details. Updates accept If-Match with the ETag last read.',
    },
    servers: [{ url: options.issuer }],
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A Keybridge access token (opaque).' },
      },
      schemas: { Problem: jsonSchema(problemSchema, 'output') },
    },
    paths,
  };
}
