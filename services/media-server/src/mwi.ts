/**
 * Message waiting (RFC 3842): the application/simple-message-summary body.
 * `Voice-Message: new/old` (§5.2); `Messages-Waiting: yes` when any is new.
 */
export const MESSAGE_SUMMARY = 'application/simple-message-summary';
export const MWI_EVENT = 'message-summary';

export function messageSummary(account: string, counts: { new: number; saved: number }): string {
  return (
    `Messages-Waiting: ${counts.new > 0 ? 'yes' : 'no'}\r\n` +
    `Message-Account: ${account}\r\n` +
    `Voice-Message: ${counts.new}/${counts.saved}\r\n`
  );
}
