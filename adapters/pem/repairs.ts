/** Names of the repairs that key normalisation makes, reported in events and docs. */

/** The name of one repair made while normalising key text. */
export type Repair =
  | 'byte-order-mark'
  | 'utf-16'
  | 'binary-der'
  | 'surrounding-whitespace'
  | 'quotes'
  | 'json-string'
  | 'escaped-newlines'
  | 'escaped-slashes'
  | 'crlf'
  | 'cr'
  | 'indentation'
  | 'line-breaks'
  | 'missing-armour'
  | 'missing-padding'
  | 'base64url-alphabet'
  | 'text-outside-armour'
  | 'label-mismatch';

/** Adds a repair once, keeping the order in which repairs were made. */
export function addRepair(repairs: Repair[], repair: Repair): void {
  if (!repairs.includes(repair)) repairs.push(repair);
}
