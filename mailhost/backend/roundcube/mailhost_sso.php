<?php
/**
 * Mailhost single sign-on for Roundcube (installed by mailhost/backend/stack.py).
 *
 * The portal (/mailbox/) stores the SHA-256 of a one-time token, bound to one mailbox and one
 * portal session, in the node's sso.sqlite and sends the browser to
 * /webmail/?_task=login&_action=login&_user=<mailbox>&_mailhost_sso=<token>.
 * This plugin redeems the token once (it is deleted in the same transaction, whatever the
 * outcome), checks it names the same mailbox, and logs in through Dovecot's master login
 * (SASL authzid = the mailbox): Dovecot still looks the mailbox up, so a suspended one is
 * refused. Every later request checks that the portal session is still live; the portal's
 * sign-out deletes it and this session ends with it.
 */
class mailhost_sso extends rcube_plugin
{
    private $grant = null;

    function init()
    {
        $this->add_hook('startup', [$this, 'startup']);
        $this->add_hook('authenticate', [$this, 'authenticate']);
        $this->add_hook('login_after', [$this, 'login_after']);
        $this->add_hook('storage_connect', [$this, 'storage_connect']);
        $this->add_hook('settings_actions', [$this, 'settings_actions']);
        $this->register_action('plugin.mailhost-password', [$this, 'password_page']);
        if (!empty($_SESSION['mailhost_sso'])) {
            $this->use_master_login();
            $org = $_SESSION['mailhost_sso']['organisation'] ?? '';
            if ($org !== '') {
                rcmail::get_instance()->config->set('product_name', $org);
            }
        }
    }

    function startup($args)
    {
        if (!empty($_GET['_mailhost_sso'])) {
            $args['task'] = 'login';
            $args['action'] = 'login';
        }
        else if (!empty($_SESSION['mailhost_sso']) && !$this->session_live($_SESSION['mailhost_sso'])) {
            // Signed out of the portal (or its session expired): no webmail session remains.
            $rc = rcmail::get_instance();
            $rc->kill_session();
            $args['task'] = 'login';
            $args['action'] = '';
        }
        return $args;
    }

    function authenticate($args)
    {
        $token = isset($_GET['_mailhost_sso']) ? (string) $_GET['_mailhost_sso'] : '';
        if ($token === '') {
            // The login form: the master login is for SSO only, never typed.
            if (strpos($args['user'], '*') !== false || $args['user'] === $this->master()) {
                $args['abort'] = true;
                $args['valid'] = false;
            }
            return $args;
        }
        $rc = rcmail::get_instance();
        $rc->kill_session();  // never mix a new sign-on into an existing session
        $user = strtolower(isset($_GET['_user']) ? (string) $_GET['_user'] : '');
        $grant = $this->redeem($token, $user);
        if ($grant === null) {
            rcube::write_log('userlogins', sprintf('SSO refused for %s from %s', $user,
                rcube_utils::remote_addr()));
            $args['abort'] = true;
            $args['valid'] = false;
            $args['error'] = 'loginfailed';
            return $args;
        }
        $this->grant = $grant;
        $this->use_master_login();
        $args['user'] = $grant['address'];
        $args['pass'] = 'mailhost-sso';  // not sent anywhere: the master login is used instead
        $args['cookiecheck'] = false;
        $args['valid'] = true;
        return $args;
    }

    /**
     * A password login names the browser's address to Dovecot before it authenticates (IMAP ID,
     * accepted from the node's own address only), so the node's bans count and refuse the
     * browser, not the webmail. SSO sessions use the master login, which Dovecot accepts from
     * the node's own address only: they send no ID.
     */
    function storage_connect($args)
    {
        if (empty($_SESSION['mailhost_sso']) && $this->grant === null) {
            $args['preauth_ident'] = ['x-originating-ip' => rcube_utils::remote_addr()];
        }
        return $args;
    }

    function login_after($args)
    {
        if ($this->grant !== null) {
            $_SESSION['mailhost_sso'] = $this->grant;
        }
        return $args;
    }

    /**
     * Settings > Password: the mailbox password is changed in the portal (/mailbox/password/),
     * by the same service as everywhere (rules, audit, every other session ended), never here.
     */
    function settings_actions($args)
    {
        $args['actions'][] = ['action' => 'plugin.mailhost-password', 'class' => 'password',
                              'label' => 'password', 'title' => 'password'];
        return $args;
    }

    function password_page()
    {
        $rc = rcmail::get_instance();
        $url = (string) $rc->config->get('mailhost_password_url');
        $rc->output->set_pagetitle($rc->gettext('password'));
        $rc->output->add_handler('plugin.body', function () use ($url) {
            return html::div(['class' => 'formcontent'],
                html::p(null, rcube::Q('Your mailbox password is changed in your mailbox portal, '
                    . 'with the same rules as for every mail app.'))
                . html::a(['href' => $url, 'target' => '_top', 'class' => 'button mainaction'],
                    rcube::Q('Change the password in the portal')));
        });
        $rc->output->send('plugin');
    }

    private function master()
    {
        return (string) rcmail::get_instance()->config->get('mailhost_sso_master');
    }

    private function use_master_login()
    {
        $rc = rcmail::get_instance();
        $secret = trim((string) @file_get_contents($rc->config->get('mailhost_sso_secret')));
        foreach (['imap', 'smtp', 'managesieve'] as $driver) {
            $rc->config->set("{$driver}_auth_cid", $this->master());
            $rc->config->set("{$driver}_auth_pw", $secret);
        }
        $rc->config->set('imap_auth_type', 'PLAIN');
        $rc->config->set('smtp_auth_type', 'PLAIN');
        $rc->config->set('managesieve_auth_type', 'PLAIN');
    }

    private function store()
    {
        $db = new PDO('sqlite:' . rcmail::get_instance()->config->get('mailhost_sso_store'));
        $db->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
        $db->exec('PRAGMA busy_timeout = 10000');
        return $db;
    }

    private function redeem($token, $user)
    {
        if (!preg_match('/^[A-Za-z0-9_-]{32,128}$/', $token)) {
            return null;
        }
        try {
            $db = $this->store();
            $hash = hash('sha256', $token);
            $db->exec('BEGIN IMMEDIATE');
            $q = $db->prepare('SELECT address, session, organisation FROM tokens '
                . 'WHERE token_hash = ? AND expires > ?');
            $q->execute([$hash, time()]);
            $row = $q->fetch(PDO::FETCH_ASSOC);
            $db->prepare('DELETE FROM tokens WHERE token_hash = ? OR expires <= ?')
                ->execute([$hash, time()]);
            $db->exec('COMMIT');
        }
        catch (Exception $e) {
            rcube::raise_error(['code' => 500, 'message' => 'SSO store: ' . $e->getMessage()],
                true, false);
            return null;
        }
        if (!$row || !hash_equals($row['address'], $user)) {
            return null;
        }
        return ['address' => $row['address'], 'session' => $row['session'],
                'organisation' => $row['organisation']];
    }

    private function session_live($grant)
    {
        try {
            $q = $this->store()->prepare('SELECT 1 FROM sessions '
                . 'WHERE session = ? AND address = ? AND expires > ?');
            $q->execute([$grant['session'], $grant['address'], time()]);
            return (bool) $q->fetchColumn();
        }
        catch (Exception $e) {
            return false;  // fail closed
        }
    }
}
