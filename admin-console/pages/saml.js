// Placeholder until this section is built.
import { html, Page } from '../ui.js';

export default function Placeholder() {
  return html`<${Page} title="saml"><p class="muted">Not built yet.</p><//>`;
}
