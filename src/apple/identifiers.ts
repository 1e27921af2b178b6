/**
 * Shapes of the identifiers that Apple issues. Apple calls Team IDs and portal key IDs
 * "10-character" identifiers; every value Apple shows is upper-case letters and digits, but no
 * Apple page says so outright. So the length and the letters-and-digits alphabet are enforced,
 * while lower case only warns. Issuer IDs and Business/School Manager key IDs are UUIDs.
 */
import { charactersIfLonger } from '../message-text.js';
import type { AppleRuleSource } from './types.js';

/** One way a value misses its shape. */
export interface ShapeIssue {
  severity: 'error' | 'warning';
  rule: string;
  /** The rule's origin, by default `apple` for errors and `reports` for warnings. */
  source?: AppleRuleSource;
  /** What is wrong, as a clause that follows the field name ("must be ..."). */
  problem: string;
  fix: string;
}

/** Checks a string against an identifier shape. */
export type ShapeCheck = (value: string) => ShapeIssue | undefined;

const tenCharacterPattern = /^[A-Za-z0-9]{10}$/;
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// CFBundleIdentifier: letters A-Z and a-z, digits, hyphens and periods.
const bundleIdPattern = /^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$/;
const reverseDnsPattern = /^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$/;
const businessClientIdPattern =
  /^(?:BUSINESSAPI|SCHOOLAPI)\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const webOriginPattern = /^https?:\/\/[^\s/?#]+$/;

/**
 * Quotes a value for a message, shortened so that a pasted blob cannot fill the screen. It counts
 * code points, so that a cut never leaves half of a surrogate pair.
 */
export function quote(value: unknown): string {
  const text = describeValue(value);
  const characters = charactersIfLonger(text, 64);
  if (characters === undefined) return text;
  return `${characters.slice(0, 60).join('')}…" (${characters.length} characters)`;
}

/** Writes a value as JSON where JSON can show it, so that NaN does not read as null. */
function describeValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    // A circular structure, or an object whose toJSON throws.
    return Object.prototype.toString.call(value);
  }
}

/**
 * Names the first character of `value` outside printable ASCII and space, such as `U+200B` for a
 * zero-width space, or returns undefined. Such characters are invisible or look like ASCII
 * letters in a message, so they are named by code point.
 */
export function firstNonAsciiCharacter(value: string): string | undefined {
  const match = /[^\x20-\x7e]/u.exec(value);
  if (!match) return undefined;
  return `U+${match[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Escapes control and invisible format characters (Unicode categories Cc and Cf, and the line
 * and paragraph separators) as `\uXXXX`, so that text taken from a token cannot move the cursor,
 * clear the screen or reorder the characters a terminal shows.
 *
 * @example
 * escapeControlCharacters('a\u001b[2Jb'); // 'a\\u001b[2Jb'
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (character) => {
    const codePoint = character.codePointAt(0)!;
    const hex = codePoint.toString(16).padStart(4, '0');
    return codePoint > 0xffff ? `\\u{${hex}}` : `\\u${hex}`;
  });
}

/** A 10-character Apple identifier: a Team ID or a developer-portal key ID. */
export function tenCharacterId(label: string, where: string): ShapeCheck {
  return (value) => {
    if (uuidPattern.test(value)) {
      return {
        severity: 'error',
        rule: 'team-or-key-id-shape',
        problem: `must be a 10-character ${label}, but ${quote(value)} is a UUID, the shape of an App Store Connect issuer ID`,
        fix: `Use the ${label} shown ${where}`,
      };
    }
    if (!tenCharacterPattern.test(value)) {
      return {
        severity: 'error',
        rule: 'team-or-key-id-shape',
        problem: `must be a 10-character ${label} of letters and digits, but is ${quote(value)}`,
        fix: `Copy the ${label} exactly as shown ${where}`,
      };
    }
    if (/[a-z]/.test(value)) {
      return {
        severity: 'warning',
        rule: 'team-or-key-id-case',
        problem: `is ${quote(value)}, with lower-case letters, but every ${label} Apple issues is upper case`,
        fix: `Copy the ${label} exactly as shown ${where}`,
      };
    }
    return undefined;
  };
}

/** A UUID, such as an App Store Connect issuer ID or a Business Manager key ID. */
export function uuid(label: string, where: string): ShapeCheck {
  return (value) => {
    if (!uuidPattern.test(value)) {
      const hint = tenCharacterPattern.test(value) ? ', and looks like a Team ID or key ID' : '';
      return {
        severity: 'error',
        rule: 'uuid-shape',
        problem: `must be the ${label}, a UUID such as 57246542-96fe-1a63-e053-0824d011072a, but is ${quote(value)}${hint}`,
        fix: `Copy the ${label} from ${where}`,
      };
    }
    if (/[A-F]/.test(value)) {
      return {
        severity: 'warning',
        rule: 'uuid-case',
        problem: `is ${quote(value)}, with upper-case hex digits, but Apple shows the ${label} in lower case`,
        fix: `Copy the ${label} exactly as shown in ${where}`,
      };
    }
    return undefined;
  };
}

/**
 * The `client_id` of Sign in with Apple: an App ID (bundle ID) or a Services ID. Apple compares
 * it case-sensitively, so it is never changed, only checked.
 */
export const signInClientId: ShapeCheck = (value) => {
  if (value.length === 0 || /[\s\p{Cc}]/u.test(value)) {
    return {
      severity: 'error',
      rule: 'client-id-shape',
      problem: `must be the App ID or Services ID, without spaces or control characters, but is ${quote(value)}`,
      fix: 'Pass the identifier exactly as registered; Apple compares it case-sensitively',
    };
  }
  const character = firstNonAsciiCharacter(value);
  if (character !== undefined) {
    return {
      severity: 'error',
      rule: 'client-id-shape',
      problem: `must be the App ID or Services ID, which are ASCII letters, digits, hyphens and periods, but ${quote(value)} contains ${character}`,
      fix: 'Retype the identifier: an invisible or look-alike character makes sub differ from the registered client_id',
    };
  }
  if (tenCharacterPattern.test(value)) {
    return {
      severity: 'warning',
      rule: 'client-id-shape',
      problem: `is ${quote(value)}, which looks like a Team ID or key ID, not an App ID or Services ID`,
      fix: 'Use the bundle ID for native apps, or the Services ID for web sign-in',
    };
  }
  if (!reverseDnsPattern.test(value)) {
    return {
      severity: 'warning',
      rule: 'client-id-shape',
      problem: `is ${quote(value)}, which is not a reverse-DNS identifier like com.example.web`,
      fix: 'Check that it is the App ID or Services ID exactly as registered',
    };
  }
  return undefined;
};

/** A bundle ID as CFBundleIdentifier allows it. */
export const bundleId: ShapeCheck = (value) => {
  if (!bundleIdPattern.test(value)) {
    return {
      severity: 'error',
      rule: 'bundle-id-shape',
      problem: `must be a bundle ID of letters, digits, hyphens and periods, but is ${quote(value)}`,
      fix: "Use the app's bundle ID, such as com.example.app",
    };
  }
  if (!value.includes('.')) {
    return {
      severity: 'warning',
      rule: 'bundle-id-shape',
      problem: `is ${quote(value)}, which is not reverse-DNS like com.example.app`,
      fix: "Check that it is the app's bundle ID",
    };
  }
  return undefined;
};

/** A WeatherKit Service ID, which Apple registers as a reverse-DNS string. */
export const serviceId: ShapeCheck = (value) => {
  if (reverseDnsPattern.test(value)) return undefined;
  const hint = tenCharacterPattern.test(value) ? ', and looks like a Team ID or key ID' : '';
  return {
    severity: 'error',
    rule: 'service-id-shape',
    problem: `must be the registered Service ID, a reverse-DNS string such as com.example.weather, but is ${quote(value)}${hint}`,
    fix: 'Use the Service ID from Certificates, Identifiers & Profiles → Identifiers → Services IDs',
  };
};

/** The client ID of the Apple School Manager or Apple Business Manager API. */
export const businessClientId: ShapeCheck = (value) => {
  if (businessClientIdPattern.test(value)) return undefined;
  return {
    severity: 'error',
    rule: 'client-id-shape',
    problem: `must be BUSINESSAPI.<uuid> or SCHOOLAPI.<uuid>, but is ${quote(value)}`,
    fix: 'Copy the client ID shown next to the API key in Apple Business Manager or Apple School Manager',
  };
};

/** A value that must be present and free of spaces, such as `jti`. */
export function nonBlank(label: string): ShapeCheck {
  return (value) => {
    if (value.length > 0 && !/\s/.test(value)) return undefined;
    return {
      severity: 'error',
      rule: 'value-blank',
      problem: `must be a non-empty ${label} without spaces, but is ${quote(value)}`,
      fix: `Pass a ${label}, or leave it out to get the default`,
    };
  };
}

/**
 * Rejects an origin with a character outside printable ASCII. Browsers send the Origin header in
 * ASCII, with international host names in punycode (RFC 6454 §6.2), so such an origin matches no
 * request, and Apple honours a token with `origin` only for a request whose Origin matches.
 */
function originCharacterIssue(value: string): ShapeIssue | undefined {
  const character = firstNonAsciiCharacter(value);
  if (character === undefined) return undefined;
  return {
    severity: 'error',
    rule: 'origin-shape',
    problem: `has ${quote(value)}, which contains ${character}, but the Origin header a browser sends is ASCII, so no request would match`,
    fix: 'Remove the character, or write an international host name in its punycode (xn--) form',
  };
}

/** One entry of MusicKit's `origin` array: a web origin such as https://music.example.com. */
export const webOrigin: ShapeCheck = (value) => {
  if (value.length === 0 || /\s/.test(value)) {
    return {
      severity: 'error',
      rule: 'origin-shape',
      problem: `must list web origins without spaces, but has ${quote(value)}`,
      fix: 'Give each origin as scheme://host[:port], such as https://music.example.com',
    };
  }
  const characterIssue = originCharacterIssue(value);
  if (characterIssue) return characterIssue;
  if (webOriginPattern.test(value) || value.includes('*')) return undefined;
  return {
    severity: 'warning',
    rule: 'origin-shape',
    problem: `has ${quote(value)}, which is not a web origin (scheme://host[:port])`,
    fix: "Match the browser's Origin header, such as https://music.example.com",
  };
};

/** MapKit JS's `origin`: one domain, possibly with a wildcard, matched to the Origin header. */
export const mapsOrigin: ShapeCheck = (value) => {
  if (value.length > 0 && !/\s/.test(value)) return originCharacterIssue(value);
  return {
    severity: 'error',
    rule: 'origin-shape',
    problem: `must be one domain without spaces, such as *.example.com, but is ${quote(value)}`,
    fix: 'Pass the domain that serves the map, or leave origin out',
  };
};
