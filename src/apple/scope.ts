/**
 * The `scope` claim of App Store Connect API tokens: a list of requests such as
 * `GET /v1/apps?filter[platform]=IOS`. Apple accepts a lifetime beyond 20 minutes only when every
 * entry is a GET on a resource from its long-lived list (Generating Tokens for API Requests,
 * https://developer.apple.com/documentation/appstoreconnectapi/generating-tokens-for-api-requests).
 */
import { firstNonAsciiCharacter, quote, type ShapeIssue } from './identifiers.js';

// Apple lists these resources by name: Build Actions, Build Runs, Git References, Issues, macOS
// Versions, Products, Providers, Power and Performance Metrics and Logs, Pull Requests,
// Repositories, Test Results, Workflows and Xcode Versions.
// NOTE: the mapping from those names to API path segments below is ours, not Apple's wording.
const longLivedResourceTypes = new Set([
  'ciBuildActions',
  'ciBuildRuns',
  'scmGitReferences',
  'ciIssues',
  'ciMacOsVersions',
  'ciProducts',
  'scmProviders',
  'perfPowerMetrics',
  'diagnosticSignatures',
  'diagnosticLogs',
  'logs',
  'scmPullRequests',
  'scmRepositories',
  'ciTestResults',
  'ciWorkflows',
  'ciXcodeVersions',
]);

// Related-resource paths, such as GET /v1/ciBuildRuns/{id}/actions, name the resource they
// read by a relationship name instead of its type.
const relationshipTypes: Readonly<Record<string, string>> = {
  actions: 'ciBuildActions',
  buildActions: 'ciBuildActions',
  buildRuns: 'ciBuildRuns',
  gitReferences: 'scmGitReferences',
  sourceBranchOrTag: 'scmGitReferences',
  destinationBranch: 'scmGitReferences',
  issues: 'ciIssues',
  macOsVersions: 'ciMacOsVersions',
  products: 'ciProducts',
  product: 'ciProducts',
  providers: 'scmProviders',
  provider: 'scmProviders',
  pullRequests: 'scmPullRequests',
  pullRequest: 'scmPullRequests',
  repositories: 'scmRepositories',
  repository: 'scmRepositories',
  primaryRepositories: 'scmRepositories',
  additionalRepositories: 'scmRepositories',
  testResults: 'ciTestResults',
  workflows: 'ciWorkflows',
  workflow: 'ciWorkflows',
  xcodeVersions: 'ciXcodeVersions',
};

const entryPattern = /^([A-Z]+) (\/v\d+\/[^\s?]+)(\?\S*)?$/;

/** Checks one scope entry's format: an upper-case method, one space and a `/v1/...` path. */
export function checkScopeEntry(entry: unknown): ShapeIssue | undefined {
  const match = typeof entry === 'string' ? entryPattern.exec(entry) : null;
  if (match) return characterIssue(match[0]) ?? requestFormIssue(match[0], match[2]!);
  return {
    severity: 'error',
    rule: 'scope-entry-shape',
    problem: `has ${quote(entry)}, but each entry must be METHOD /v1/path[?query], such as "GET /v1/apps?filter[platform]=IOS"`,
    fix: 'Write each scope entry as the request method, one space and the request path',
  };
}

/** Rejects characters that no request line carries, so that the entry could match no request. */
function characterIssue(entry: string): ShapeIssue | undefined {
  const character = firstNonAsciiCharacter(entry);
  if (character === undefined) return undefined;
  return {
    severity: 'error',
    rule: 'scope-entry-shape',
    problem: `has ${quote(entry)}, which contains ${character}, but a request line is ASCII, so the entry would match no request`,
    fix: 'Remove the character, or percent-encode it as the request does',
  };
}

/**
 * Rejects what a request never carries: a fragment, which clients do not send, `.` and `..`
 * segments, which clients remove (RFC 3986 §5.2.4), and empty segments, which no App Store
 * Connect path has. Such an entry matches no request, and `..` would also let a path such as
 * /v1/apps/../ciProducts pass for a long-lived resource.
 */
function requestFormIssue(entry: string, path: string): ShapeIssue | undefined {
  const segments = path.split('/').slice(1);
  const hasDotOrEmptySegment = segments.some(
    (segment) => segment === '' || segment === '.' || segment === '..',
  );
  if (!hasDotOrEmptySegment && !entry.includes('#')) return undefined;
  return {
    severity: 'error',
    rule: 'scope-entry-shape',
    problem: `has ${quote(entry)}, but a request path has no fragment and no empty, "." or ".." segments, so the entry would match no request`,
    fix: 'Write the path as the request sends it, such as "GET /v1/ciProducts/{id}/workflows"',
  };
}

/**
 * Returns why a scope does not qualify for the long lifetime, or undefined when it does: every
 * entry must be a GET on a long-lived resource.
 */
export function longLivedScopeShortfall(scope: unknown): string | undefined {
  if (!Array.isArray(scope) || scope.length === 0) return 'the token has no scope';
  for (const entry of scope) {
    const match = typeof entry === 'string' ? entryPattern.exec(entry) : null;
    if (!match || checkScopeEntry(entry)) return `scope entry ${quote(entry)} is malformed`;
    if (match[1] !== 'GET') return `scope entry ${quote(entry)} is not a GET`;
    const named = resourceTypeOf(match[2]!);
    const resource = Object.hasOwn(relationshipTypes, named) ? relationshipTypes[named]! : named;
    if (!longLivedResourceTypes.has(resource)) {
      return `scope entry ${quote(entry)} reads ${resource}, which is not on Apple's long-lived list`;
    }
  }
  return undefined;
}

/** Finds the resource type a path reads: the collection, or the one an ID in last place names. */
function resourceTypeOf(path: string): string {
  const segments = path
    .split('/')
    .slice(2)
    .filter((segment) => segment !== 'relationships');
  const last = segments.length - 1;
  return (segments.length % 2 === 1 ? segments[last] : segments[last - 1]) ?? '';
}
