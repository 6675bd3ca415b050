// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {PayoutLib} from "../lib/PayoutLib.sol";
import {IJobMarketErrors} from "../market/IJobMarketErrors.sol";
import {DisputeGame} from "./DisputeGame.sol";
import {RulingPhase} from "./DisputeTypes.sol";
import {IArbiterRefereeErrors} from "./IArbiterRefereeErrors.sol";
import {IOperatorReferee} from "./IOperatorReferee.sol";

/// @title ArbiterReferee
/// @notice A staked committee rules on games narrowed to one link (docs/protocol.md §6.5). Members
///         stake ARBITER_STAKE to join; a join or an exit takes effect only MEMBERSHIP_DELAY
///         later, longer than any game, so no one can change who votes on a game once it is
///         open. Each member votes the link value its re-execution of the operator produced
///         (votes keyed by hash; the solver wins iff the decided hash is its own non-zero one).
///         A strict majority of the eligible members decides at once; QUORUM equal votes short
///         of a majority propose a ruling; during APPEAL_WINDOW anyone may appeal with
///         APPEAL_BOND, which escalates to the whole committee: a strict majority of the
///         members eligible for the game decides, and if it overturns the proposal, every
///         member that voted the proposed hash loses its whole stake (half to the appellant, the
///         rest burned). A silent first round escalates by itself. After the escalation window
///         the proposal stands, or a hash with QUORUM votes and a strict plurality decides, or
///         the game is voided (JobMarket reopens its window a bounded number of times). A
///         ruling settles at most RULING_WINDOW + APPEAL_WINDOW + ESCALATION_WINDOW after the
///         request.
/// @dev Trust assumption: a strict majority of the members eligible for a game is honest and
///      votes within the windows. Every ruling is reproducible from the published bundle, so
///      an honest member always knows the right hash.
contract ArbiterReferee is IOperatorReferee, IArbiterRefereeErrors, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Most members at once (bounds every loop over the committee).
    uint256 public constant MAX_ARBITERS = 32;
    /// @notice Share (bps) of the slashed stakes paid to the appellant that overturned a ruling.
    uint256 public constant APPELLANT_SHARE_BPS = 5_000;
    /// @notice Level extensions a game may add to each clock before it asks for a ruling
    ///         (STEP, OP, bundle, and one spare); sizes the longest game in setGame.
    uint64 public constant MAX_LEVEL_EXTENSIONS = 4;

    /// @notice The token of stakes and appeal bonds.
    ERC20Burnable public immutable TOKEN;
    /// @notice Binds the game, once; has no say over membership or rulings.
    address public immutable OWNER;
    /// @notice What a member stakes (and loses if it is on the wrong side of an overturn).
    uint256 public immutable ARBITER_STAKE;
    /// @notice k: equal votes that propose a ruling (>= 2, so no one member decides alone).
    uint32 public immutable QUORUM;
    /// @notice Seconds members have to vote after a request.
    uint64 public immutable RULING_WINDOW;
    /// @notice Seconds after a proposal during which anyone may appeal it.
    uint64 public immutable APPEAL_WINDOW;
    /// @notice Seconds the whole committee has to decide an escalated ruling.
    uint64 public immutable ESCALATION_WINDOW;
    /// @notice What an appellant locks (refunded unless a majority upholds the ruling).
    uint256 public immutable APPEAL_BOND;
    /// @notice Seconds before a join or exit takes effect (longer than any game).
    uint64 public immutable MEMBERSHIP_DELAY;

    /// @notice A committee member.
    struct Member {
        // locked stake (0: not a member)
        uint256 stake;
        // votes on rulings requested at or after this time
        uint64 activeFrom;
        // 0, or: votes only on rulings requested before this time
        uint64 exitAt;
    }

    /// @notice The committee's ruling on one game.
    struct Ruling {
        uint64 requestedAt;
        // when QUORUM equal votes proposed `proposedHash` (0: not yet)
        uint64 proposedAt;
        // when the proposal was appealed (0: not appealed)
        uint64 appealedAt;
        // members eligible for this game, counted at the request
        uint32 committeeSize;
        bool settled;
        address appellant;
        // the solver's value at the disputed link (the game's hashHi)
        bytes32 solverHash;
        bytes32 proposedHash;
    }

    /// @notice The game whose rulings this referee gives (set once).
    DisputeGame public game;
    /// @notice Each account's membership.
    mapping(address account => Member) public members;
    /// @notice Withdrawable balances (appeal refunds and rewards).
    mapping(address account => uint256 amount) public credits;
    /// @notice Sum of `credits`.
    uint256 public totalCredits;
    /// @notice Tokens this referee burned (slashed stakes, failed appeal bonds).
    uint256 public totalBurned;

    address[] internal _committee;
    mapping(uint256 gameId => Ruling) internal _rulings;
    mapping(uint256 gameId => address[]) internal _voters;
    mapping(uint256 gameId => mapping(address arbiter => bytes32 hash)) internal _voteOf;
    mapping(uint256 gameId => mapping(address arbiter => bool)) internal _hasVoted;
    mapping(uint256 gameId => mapping(bytes32 hash => uint32 votes)) internal _tally;

    /// @notice The referee was bound to `game`.
    event GameSet(address indexed game);
    /// @notice `payer` staked for `arbiter`, who votes on rulings requested from `activeFrom`.
    event ArbiterJoined(address indexed arbiter, address indexed payer, uint256 stake, uint64 activeFrom);
    /// @notice `arbiter` leaves: it votes only on rulings requested before `exitAt`.
    event ExitRequested(address indexed arbiter, uint64 exitAt);
    /// @notice `arbiter` took back its stake and left the committee.
    event StakeWithdrawn(address indexed arbiter, uint256 amount);
    /// @notice A ruling on `gameId` was requested; `committeeSize` members may vote until `deadline`.
    event RulingPending(uint256 indexed gameId, uint32 committeeSize, uint64 deadline);
    /// @notice `arbiter` voted `computedHash`, which now has `votes` votes.
    event Voted(uint256 indexed gameId, address indexed arbiter, bytes32 computedHash, uint32 votes);
    /// @notice QUORUM votes agree on `computedHash`; it stands unless appealed by `appealDeadline`.
    event RulingProposed(uint256 indexed gameId, bytes32 computedHash, bool solverWon, uint64 appealDeadline);
    /// @notice The ruling on `gameId` went to the whole committee, which has until `deadline`.
    event Escalated(uint256 indexed gameId, address indexed appellant, uint64 deadline);
    /// @notice The committee decided `computedHash`; `overturned`: a majority reversed the proposal.
    event Ruled(uint256 indexed gameId, bytes32 computedHash, bool solverWon, bool overturned);
    /// @notice `arbiter` voted for an overturned ruling and lost `amount`.
    event ArbiterSlashed(uint256 indexed gameId, address indexed arbiter, uint256 amount);
    /// @notice The committee could not decide; the game was voided.
    event RulingExpired(uint256 indexed gameId);
    /// @notice `amount` became withdrawable from the referee by `account`.
    event RefereeCredited(address indexed account, uint256 amount);
    /// @notice `account` withdrew `amount` of referee credit.
    event RefereeWithdrawn(address indexed account, uint256 amount);

    /// @param token The WorkToken (must support burn).
    /// @param owner Binds the game (nothing else).
    /// @param arbiterStake What each member stakes (> 0).
    /// @param quorum k, equal votes that propose a ruling (>= 2).
    /// @param rulingWindow Seconds to vote after a request (> 0).
    /// @param appealWindow Seconds to appeal a proposal (> 0).
    /// @param escalationWindow Seconds for the whole committee after an escalation (> 0).
    /// @param appealBond What an appellant locks (> 0).
    /// @param membershipDelay Seconds before a join or exit takes effect (checked in setGame).
    constructor(
        ERC20Burnable token,
        address owner,
        uint256 arbiterStake,
        uint32 quorum,
        uint64 rulingWindow,
        uint64 appealWindow,
        uint64 escalationWindow,
        uint256 appealBond,
        uint64 membershipDelay
    ) {
        if (address(token) == address(0) || owner == address(0)) revert IJobMarketErrors.ZeroAddress();
        if (arbiterStake == 0) revert InvalidRefereeParameter("arbiterStake", arbiterStake);
        if (quorum < 2 || quorum > MAX_ARBITERS) revert InvalidRefereeParameter("quorum", quorum);
        if (rulingWindow == 0) revert InvalidRefereeParameter("rulingWindow", rulingWindow);
        if (appealWindow == 0) revert InvalidRefereeParameter("appealWindow", appealWindow);
        if (escalationWindow == 0) revert InvalidRefereeParameter("escalationWindow", escalationWindow);
        if (appealBond == 0) revert InvalidRefereeParameter("appealBond", appealBond);
        TOKEN = token;
        OWNER = owner;
        ARBITER_STAKE = arbiterStake;
        QUORUM = quorum;
        RULING_WINDOW = rulingWindow;
        APPEAL_WINDOW = appealWindow;
        ESCALATION_WINDOW = escalationWindow;
        APPEAL_BOND = appealBond;
        MEMBERSHIP_DELAY = membershipDelay;
    }

    // ------------------------------------------------------------------ membership

    /// @notice Bind the game contract. Once, by the owner. The membership delay must outlast
    ///         the longest game it allows (both clocks with every level extension).
    /// @param game_ The DisputeGame using this referee.
    function setGame(DisputeGame game_) external {
        if (msg.sender != OWNER) revert NotOwner(msg.sender);
        if (address(game) != address(0)) revert GameAlreadySet(address(game));
        if (address(game_) == address(0)) revert IJobMarketErrors.ZeroAddress();
        uint64 longest = 2 * (game_.CLOCK_BUDGET() + MAX_LEVEL_EXTENSIONS * game_.LEVEL_EXTENSION());
        if (MEMBERSHIP_DELAY <= longest) revert MembershipDelayTooShort(MEMBERSHIP_DELAY, longest);
        game = game_;
        emit GameSet(address(game_));
    }

    /// @notice Stake ARBITER_STAKE (from the caller, approve first) to make `arbiter` a member.
    ///         It votes on rulings requested MEMBERSHIP_DELAY from now, or at once while no
    ///         game has ever been opened (the founding committee).
    /// @param arbiter The new member (withdraws the stake when it leaves).
    function join(address arbiter) external nonReentrant {
        if (arbiter == address(0)) revert IJobMarketErrors.ZeroAddress();
        Member storage m = members[arbiter];
        if (m.stake != 0) revert AlreadyMember(arbiter);
        if (_committee.length >= MAX_ARBITERS) revert CommitteeFull(MAX_ARBITERS);
        // INVARIANT: once any game exists, a new member can vote only on games opened after it
        // joined (MEMBERSHIP_DELAY outlasts every game), so joining cannot sway an open game.
        bool founding = address(game) == address(0) || game.gameCount() == 0;
        uint64 activeFrom = uint64(block.timestamp) + (founding ? 0 : MEMBERSHIP_DELAY);
        m.stake = ARBITER_STAKE;
        m.activeFrom = activeFrom;
        m.exitAt = 0;
        _committee.push(arbiter);
        emit ArbiterJoined(arbiter, msg.sender, ARBITER_STAKE, activeFrom);
        IERC20(address(TOKEN)).safeTransferFrom(msg.sender, address(this), ARBITER_STAKE);
    }

    /// @notice Leave the committee: the caller votes only on rulings requested in the next
    ///         MEMBERSHIP_DELAY seconds, and may withdraw once those are all settled.
    function leave() external {
        Member storage m = members[msg.sender];
        if (m.stake == 0) revert NotArbiter(msg.sender);
        if (m.exitAt != 0) revert ExitPending(msg.sender, m.exitAt);
        m.exitAt = uint64(block.timestamp) + MEMBERSHIP_DELAY;
        emit ExitRequested(msg.sender, m.exitAt);
    }

    /// @notice Take back the stake after leaving, once every ruling the caller could vote on
    ///         is past its last vote (so it can no longer be slashed).
    function withdrawStake() external nonReentrant {
        Member storage m = members[msg.sender];
        if (m.stake == 0) revert NotArbiter(msg.sender);
        if (m.exitAt == 0) revert StakeLocked(msg.sender, type(uint64).max);
        uint64 availableAt = m.exitAt + settlementBound();
        if (block.timestamp < availableAt) revert StakeLocked(msg.sender, availableAt);
        uint256 amount = m.stake;
        m.stake = 0;
        _removeMember(msg.sender);
        emit StakeWithdrawn(msg.sender, amount);
        IERC20(address(TOKEN)).safeTransfer(msg.sender, amount);
    }

    /// @notice Withdraw the caller's referee credit (appeal refunds and rewards).
    function withdraw() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NoRefereeCredit(msg.sender);
        // SAFETY: zero the credit before the transfer (checks-effects-interactions).
        credits[msg.sender] = 0;
        totalCredits -= amount;
        emit RefereeWithdrawn(msg.sender, amount);
        IERC20(address(TOKEN)).safeTransfer(msg.sender, amount);
    }

    // --------------------------------------------------------------------- rulings

    /// @inheritdoc IOperatorReferee
    /// @dev Never reverts for the bound game: a revert here would block the solver's move.
    function requestRuling(uint256 gameId) external {
        if (msg.sender != address(game)) revert NotGame(msg.sender);
        Ruling storage r = _rulings[gameId];
        r.requestedAt = uint64(block.timestamp);
        r.committeeSize = uint32(_countEligible(block.timestamp));
        r.solverHash = game.getGame(gameId).hashHi;
        emit RulingPending(gameId, r.committeeSize, r.requestedAt + RULING_WINDOW);
    }

    /// @notice Vote the link value your re-execution of the disputed operator produced (zero:
    ///         the solver's bundle is missing or inconsistent, so the solver loses). Only members
    ///         active at the request, once, in the voting round or an escalation.
    /// @param gameId The game.
    /// @param computedHash The value at the link's end that re-execution gives.
    function vote(uint256 gameId, bytes32 computedHash) external nonReentrant {
        Ruling storage r = _rulings[gameId];
        RulingPhase p = phase(gameId);
        if (p != RulingPhase.Voting && p != RulingPhase.Escalated) {
            revert WrongRulingPhase(gameId, RulingPhase.Voting, p);
        }
        // INVARIANT: an escalation takes votes only until its deadline; settle() decides after.
        if (p == RulingPhase.Escalated && block.timestamp > escalationDeadline(gameId)) {
            revert WrongRulingPhase(gameId, RulingPhase.Escalated, RulingPhase.Settled);
        }
        if (!eligible(gameId, msg.sender)) revert NotEligible(gameId, msg.sender);
        if (_hasVoted[gameId][msg.sender]) revert AlreadyVoted(gameId, msg.sender);
        _hasVoted[gameId][msg.sender] = true;
        _voteOf[gameId][msg.sender] = computedHash;
        _voters[gameId].push(msg.sender);
        uint32 votes = ++_tally[gameId][computedHash];
        emit Voted(gameId, msg.sender, computedHash, votes);
        if (uint256(votes) * 2 > r.committeeSize) {
            // A strict majority of the committee is final at once: votes are final, so no
            // escalation could ever gather a majority for another hash.
            _decide(gameId, r, computedHash, true);
        } else if (p == RulingPhase.Voting && votes >= QUORUM) {
            r.proposedAt = uint64(block.timestamp);
            r.proposedHash = computedHash;
            emit RulingProposed(gameId, computedHash, _solverWon(r, computedHash), r.proposedAt + APPEAL_WINDOW);
        }
    }

    /// @notice Appeal a proposed ruling: lock APPEAL_BOND (approve first) and send the ruling to
    ///         the whole committee. Refunded with half the stakes of the proposal's voters if a
    ///         majority overturns it, refunded if no majority forms, burned if a majority upholds.
    /// @param gameId The game.
    function appeal(uint256 gameId) external nonReentrant {
        Ruling storage r = _rulings[gameId];
        RulingPhase p = phase(gameId);
        if (p != RulingPhase.AppealOpen) revert WrongRulingPhase(gameId, RulingPhase.AppealOpen, p);
        if (block.timestamp > r.proposedAt + APPEAL_WINDOW) {
            revert WrongRulingPhase(gameId, RulingPhase.AppealOpen, RulingPhase.Settled);
        }
        r.appealedAt = uint64(block.timestamp);
        r.appellant = msg.sender;
        emit Escalated(gameId, msg.sender, escalationDeadline(gameId));
        IERC20(address(TOKEN)).safeTransferFrom(msg.sender, address(this), APPEAL_BOND);
        // A majority may already stand behind the proposal: uphold at once.
        if (uint256(_tally[gameId][r.proposedHash]) * 2 > r.committeeSize) _decide(gameId, r, r.proposedHash, true);
    }

    /// @notice Settle a ruling whose last window has passed. Anyone may call. An unappealed
    ///         proposal stands; an appealed one with no majority against it stands; an escalation
    ///         with no proposal is decided by a hash with at least QUORUM votes and strictly more
    ///         than any other, else the game is voided.
    /// @param gameId The game.
    function settle(uint256 gameId) external nonReentrant {
        Ruling storage r = _rulings[gameId];
        RulingPhase p = phase(gameId);
        if (p == RulingPhase.AppealOpen) {
            uint64 appealDeadline = r.proposedAt + APPEAL_WINDOW;
            if (block.timestamp <= appealDeadline) revert WrongRulingPhase(gameId, RulingPhase.Settled, p);
            _decide(gameId, r, r.proposedHash, false);
            return;
        }
        if (p != RulingPhase.Escalated || block.timestamp <= escalationDeadline(gameId)) {
            revert WrongRulingPhase(gameId, RulingPhase.Settled, p);
        }
        if (r.proposedAt != 0) {
            _decide(gameId, r, r.proposedHash, false);
            return;
        }
        (bytes32 top, bool decisive) = _plurality(gameId);
        if (decisive) {
            _decide(gameId, r, top, false);
        } else {
            r.settled = true;
            emit RulingExpired(gameId);
            game.reportVoid(gameId);
        }
    }

    // ----------------------------------------------------------------------- views

    /// @notice The phase of the ruling on `gameId` now.
    /// @param gameId The game.
    function phase(uint256 gameId) public view returns (RulingPhase) {
        Ruling storage r = _rulings[gameId];
        if (r.requestedAt == 0) return RulingPhase.Unrequested;
        if (r.settled) return RulingPhase.Settled;
        if (r.appealedAt != 0) return RulingPhase.Escalated;
        if (r.proposedAt != 0) return RulingPhase.AppealOpen;
        if (block.timestamp <= r.requestedAt + RULING_WINDOW) return RulingPhase.Voting;
        return RulingPhase.Escalated;
    }

    /// @notice Last second of the escalation of `gameId` (after an appeal, or after a silent
    ///         voting round).
    /// @param gameId The game.
    function escalationDeadline(uint256 gameId) public view returns (uint64) {
        Ruling storage r = _rulings[gameId];
        uint64 start = r.appealedAt != 0 ? r.appealedAt : r.requestedAt + RULING_WINDOW;
        return start + ESCALATION_WINDOW;
    }

    /// @notice Seconds from a request to the last moment any vote on it counts.
    function settlementBound() public view returns (uint64) {
        return RULING_WINDOW + APPEAL_WINDOW + ESCALATION_WINDOW;
    }

    /// @notice The stored ruling on `gameId`.
    /// @param gameId The game.
    function rulingOf(uint256 gameId) external view returns (Ruling memory) {
        return _rulings[gameId];
    }

    /// @notice Whether `account` may vote on `gameId` (a member with its stake, active at the
    ///         request and not exited before it).
    /// @param gameId The game.
    /// @param account The account.
    function eligible(uint256 gameId, address account) public view returns (bool) {
        uint64 requestedAt = _rulings[gameId].requestedAt;
        return requestedAt != 0 && _active(members[account], requestedAt);
    }

    /// @notice Whether `account` votes on rulings requested now.
    /// @param account The account.
    function isActive(address account) external view returns (bool) {
        return _active(members[account], block.timestamp);
    }

    /// @notice What `arbiter` voted on `gameId`.
    /// @param gameId The game.
    /// @param arbiter The member.
    function voteOf(uint256 gameId, address arbiter) external view returns (bool voted, bytes32 computedHash) {
        return (_hasVoted[gameId][arbiter], _voteOf[gameId][arbiter]);
    }

    /// @notice Votes for `computedHash` on `gameId`.
    /// @param gameId The game.
    /// @param computedHash The hash.
    function tally(uint256 gameId, bytes32 computedHash) external view returns (uint32) {
        return _tally[gameId][computedHash];
    }

    /// @notice Every member, active, pending or leaving.
    function committee() external view returns (address[] memory) {
        return _committee;
    }

    // -------------------------------------------------------------------- internal

    function _active(Member storage m, uint256 at) internal view returns (bool) {
        return m.stake != 0 && m.activeFrom <= at && (m.exitAt == 0 || m.exitAt > at);
    }

    function _countEligible(uint256 at) internal view returns (uint256 n) {
        for (uint256 i = 0; i < _committee.length; i++) {
            if (_active(members[_committee[i]], at)) n++;
        }
    }

    function _solverWon(Ruling storage r, bytes32 computedHash) internal view returns (bool) {
        // SAFETY: a zero vote means "no valid bundle"; it never confirms a solver's zero hash.
        return computedHash != bytes32(0) && computedHash == r.solverHash;
    }

    function _plurality(uint256 gameId) internal view returns (bytes32 top, bool decisive) {
        address[] storage voters = _voters[gameId];
        uint32 best;
        uint32 second;
        for (uint256 i = 0; i < voters.length; i++) {
            bytes32 h = _voteOf[gameId][voters[i]];
            uint32 votes = _tally[gameId][h];
            if (h == top && best != 0) continue;
            if (votes > best) {
                second = best;
                best = votes;
                top = h;
            } else if (votes > second) {
                second = votes;
            }
        }
        decisive = best >= QUORUM && best > second;
    }

    /// Report `computedHash` as the decision; on an appeal, settle the bond and slash the
    /// proposal's voters if a majority (`byMajority`) overturned it.
    function _decide(uint256 gameId, Ruling storage r, bytes32 computedHash, bool byMajority) internal {
        r.settled = true;
        bool overturned = r.proposedAt != 0 && computedHash != r.proposedHash;
        if (r.appealedAt != 0) {
            if (overturned) {
                uint256 slashed = _slashVoters(gameId, r.proposedHash);
                (uint256 toAppellant, uint256 burned) = PayoutLib.split(slashed, APPELLANT_SHARE_BPS);
                _credit(r.appellant, APPEAL_BOND + toAppellant);
                _burn(burned);
            } else if (byMajority) {
                _burn(APPEAL_BOND);
            } else {
                _credit(r.appellant, APPEAL_BOND);
            }
        }
        bool solverWon = _solverWon(r, computedHash);
        emit Ruled(gameId, computedHash, solverWon, overturned);
        game.reportRuling(gameId, solverWon);
    }

    function _slashVoters(uint256 gameId, bytes32 wrongHash) internal returns (uint256 total) {
        address[] storage voters = _voters[gameId];
        for (uint256 i = 0; i < voters.length; i++) {
            address arbiter = voters[i];
            if (_voteOf[gameId][arbiter] != wrongHash) continue;
            Member storage m = members[arbiter];
            uint256 amount = m.stake;
            if (amount == 0) continue;
            m.stake = 0;
            _removeMember(arbiter);
            total += amount;
            emit ArbiterSlashed(gameId, arbiter, amount);
        }
    }

    function _removeMember(address arbiter) internal {
        uint256 last = _committee.length - 1;
        for (uint256 i = 0; i <= last; i++) {
            if (_committee[i] == arbiter) {
                _committee[i] = _committee[last];
                _committee.pop();
                return;
            }
        }
    }

    function _credit(address account, uint256 amount) internal {
        if (amount == 0) return;
        credits[account] += amount;
        totalCredits += amount;
        emit RefereeCredited(account, amount);
    }

    function _burn(uint256 amount) internal {
        if (amount == 0) return;
        totalBurned += amount;
        TOKEN.burn(amount);
    }
}
