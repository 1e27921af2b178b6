/**
 * The App Store Connect scope rules: the shape of one entry, and whether a scope qualifies for a
 * lifetime beyond 20 minutes (every entry a GET on a resource from Apple's long-lived list).
 */
import { describe, expect, it } from 'vitest';
import { checkScopeEntry, longLivedScopeShortfall } from '../../src/apple/scope.js';

describe('checkScopeEntry', () => {
  it.each([
    'GET /v1/apps',
    'GET /v1/apps?filter[platform]=IOS',
    'POST /v1/ciBuildRuns',
    'PATCH /v2/inAppPurchases/123',
  ])('accepts %j', (entry) => {
    expect(checkScopeEntry(entry)).toBeUndefined();
  });

  it.each([
    '/v1/apps',
    'get /v1/apps',
    'GET  /v1/apps',
    'GET /apps',
    'GET /v1/apps extra',
    'GET https://api.appstoreconnect.apple.com/v1/apps',
    '',
    'GET /v1/apps\u200b',
    'GET /v1/apps?filter[name]=\u0007',
    'GET /v1/\u0430pps',
    'GET /v1/apps?filter[name]=Caf\u00e9',
    'GET /v1/apps/../ciProducts',
    'GET /v1/ciProducts/./abc',
    'GET /v1//ciProducts',
    'GET /v1/ciProducts/',
    'GET /v1/ciProducts#top',
    'GET /v1/ciProducts?limit=10#top',
  ])('rejects %j', (entry) => {
    expect(checkScopeEntry(entry)?.rule).toBe('scope-entry-shape');
    expect(checkScopeEntry(entry)?.severity).toBe('error');
  });
});

describe('longLivedScopeShortfall', () => {
  it.each([
    [['GET /v1/ciProducts']],
    [['GET /v1/ciProducts/abc']],
    [['GET /v1/ciProducts/abc/workflows']],
    [['GET /v1/ciBuildRuns/abc/actions']],
    [['GET /v1/ciBuildActions/abc/testResults', 'GET /v1/ciBuildActions/abc/issues']],
    [['GET /v1/scmRepositories/abc/gitReferences?limit=200']],
    [['GET /v1/scmRepositories/abc/pullRequests']],
    [['GET /v1/ciXcodeVersions/abc/macOsVersions']],
    [['GET /v1/apps/abc/perfPowerMetrics']],
    [['GET /v1/diagnosticSignatures/abc/logs']],
    [['GET /v1/ciWorkflows/abc/relationships/buildRuns']],
  ])('qualifies %j', (scope) => {
    expect(longLivedScopeShortfall(scope)).toBeUndefined();
  });

  it.each([
    [undefined, 'no scope'],
    [[], 'no scope'],
    [['GET /v1/apps'], 'apps'],
    [['GET /v1/ciProducts/abc/app'], 'app'],
    [['GET /v1/ciBuildRuns/abc/builds'], 'builds'],
    [['POST /v1/ciBuildRuns'], 'not a GET'],
    [['GET /v1/ciProducts', 'DELETE /v1/ciProducts/abc'], 'not a GET'],
    [['GET /v1/ciProducts', 'GET /v1/users'], 'users'],
    [['GET /v1/ciProducts/abc/constructor'], 'constructor'],
    [['nonsense'], 'malformed'],
    [['GET /v1/apps/../ciProducts'], 'malformed'],
  ])('rejects %j', (scope, reason) => {
    expect(longLivedScopeShortfall(scope)).toContain(reason);
  });
});
