// Placeholder until this section is built.
import { html, Page } from '../ui.js';

export default function Placeholder() {
  return html`<${Page} title="groups"><p class="muted">Not built yet.</p><//>`;
}
