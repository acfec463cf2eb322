// Placeholder until this section is built.
import { html, Page } from '../ui.js';

export default function Placeholder() {
  return html`<${Page} title="users"><p class="muted">Not built yet.</p><//>`;
}
