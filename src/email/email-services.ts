// Everything the email features share, built once per instance: the mail renderer, the outbox
// and its worker, the action links, and the password policy every form checks.
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { MessageCatalogs } from '../i18n/messages.ts';
import type { PasswordPolicyService } from '../accounts/password-policy.ts';
import { MailRenderer } from './mail-renderer.ts';
import { createMailTransport, type MailTransport } from './mail-transport.ts';
import { createMailer, type Mailer } from './outbox.ts';
import { ActionLinks } from './action-links.ts';

export interface EmailServices {
  config: Config;
  store: Store;
  logger: Logger;
  mailer: Mailer;
  links: ActionLinks;
  policy: PasswordPolicyService;
  /** The display name of a connector (for "reset your password at <name>"). */
  connectorName(id: string): string;
  /** Whether the login page offers "Forgot password?" (`passwordReset.enabled`, default: SMTP configured). */
  passwordResetEnabled: boolean;
}

export function createEmailServices(deps: { config: Config; store: Store; logger: Logger; catalogs: MessageCatalogs; policy: PasswordPolicyService; connectorName(id: string): string; transport?: MailTransport }): EmailServices {
  const { config, store, logger } = deps;
  const renderer = new MailRenderer({ catalogs: deps.catalogs, brand: config.ui.title, themeDir: config.ui.themeDir });
  const transport = deps.transport ?? createMailTransport(config.email, logger);
  if (transport.kind === 'log') {
    const mailing = config.registration.enabled || config.passwordReset.enabled === true;
    // Links to create accounts or reset passwords would sit in the log; say so where it matters.
    if (mailing) logger.warn('no SMTP server configured (email.smtp): registration and password-reset mails, with their links, are written to the log instead of being sent');
    else logger.info('no SMTP server configured (email.smtp): mails are written to the log');
  }
  const mailer = createMailer({ config: config.email, store, renderer, transport, logger });
  return {
    config,
    store,
    logger,
    mailer,
    links: new ActionLinks(store, config.issuer),
    policy: deps.policy,
    connectorName: deps.connectorName,
    passwordResetEnabled: config.passwordReset.enabled ?? Boolean(config.email.smtp),
  };
}
