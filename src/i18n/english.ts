// A page text in English, for the places that also need words outside a page: an error's
// `message` (logs, JSON answers to API callers) next to its translatable `text`.
import { MessageCatalogs, type Translate } from './messages.ts';
import type { PageText } from './page-text.ts';

let translate: Translate | undefined;

export function english(text: PageText): string {
  translate ??= new MessageCatalogs().translator('en');
  return translate(text);
}
